"""Atomic file writes: every file the library writes goes through here (strict JSON too).

A temporary file is created beside the target (same folder, so the rename cannot cross file
systems), filled, flushed to disk and renamed over the target with ``os.replace``. A reader never
sees a half-written file, and a failure leaves any earlier file intact. A full disk is an
``OSError`` whose ``errno`` is in :data:`NO_SPACE` and whose ``filename`` is the target (never
the temporary file); :func:`is_no_space` tells one anywhere in an exception's chain.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)  # a full disk, or the user's quota on it


def is_no_space(error: BaseException | None) -> OSError | None:
    """The full-disk ``OSError`` (:data:`NO_SPACE`) in ``error`` or the exceptions it was
    raised from or during (a library may wrap one in its own error), or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in NO_SPACE:
            return error
        error = error.__cause__ or error.__context__
    return None


def no_space_message(error: OSError) -> str:
    """``no space left on PATH`` for a full-disk error, with the writer's own explanation
    when it gave one (one line, for a person)."""
    where = error.filename if error.filename is not None else "the disk"
    detail = error.strerror or ""
    explained = "" if not detail or detail == os.strerror(error.errno) else f" ({detail})"
    return f"no space left on {where}{explained}; free some space there or write elsewhere"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; rename it over ``path`` if the block succeeds.

    For writers that want a file name (soundfile, matplotlib). On an exception the temporary
    file is removed and the target is untouched.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        parents = (p for p in reversed(target.parents) if p.exists() and not p.is_dir())
        file = next(parents, target.parent)
        raise NotADirectoryError(f"cannot write {target}: {file} is a file, not a folder") from None
    try:
        handle, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        )
    except OSError as error:  # name the file asked for, not the temporary one beside it
        raise type(error)(error.errno, error.strerror, str(target)) from None
    os.close(handle)
    # mkstemp creates 0600; give the final file the permissions the user's umask allows
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    try:
        yield Path(temporary)
        os.replace(temporary, target)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in NO_SPACE:  # name the target
            raise OSError(error.errno, error.strerror, str(target)) from error
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (fsynced before the rename); returns the path."""
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_npz(path: str | os.PathLike, **arrays) -> Path:
    """``np.savez`` of plain numeric arrays, atomically (object arrays, which would need pickle
    to read back, are refused)."""
    arrays = {name: np.asarray(value) for name, value in arrays.items()}
    pickled = [name for name, value in arrays.items() if value.dtype == object]
    if pickled:
        raise ValueError(
            f"arrays {pickled} hold Python objects; only numeric and string arrays "
            "are saved (they must load without pickle)"
        )
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def jsonable(value):
    """``value`` as strict-JSON-ready Python: mappings with string keys, lists for tuples and
    arrays, Python scalars for numpy ones, and None for NaN and ±Inf (strict JSON has none)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _inline_number_lists(value, depth: int) -> str:
    """Indented strict JSON whose lists of plain numbers stay on one line."""
    pad, inner = " " * depth, " " * (depth + 1)
    if isinstance(value, dict) and value:
        items = [
            f"{inner}{json.dumps(str(k))}: {_inline_number_lists(v, depth + 1)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if (
        isinstance(value, list)
        and value
        and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        items = [f"{inner}{_inline_number_lists(v, depth + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def atomic_write_json(path: str | os.PathLike, value, *, inline_number_lists: bool = False) -> Path:
    """Write ``value`` (through :func:`jsonable`) as strict JSON, atomically; returns the path.

    Indented by 2 spaces, or with ``inline_number_lists`` by one space per level with every
    list of plain numbers on one line (for results holding long per-setting lists).
    """
    ready = jsonable(value)
    if inline_number_lists:
        text = _inline_number_lists(ready, 0)
    else:
        text = json.dumps(ready, indent=2, allow_nan=False)
    return atomic_write_text(path, text + "\n")
