"""A chunked on-disk store of explored settings: a Zarr v3 group written through TensorStore.

Layout of ``DIR.zarr`` (every node is plain Zarr v3, so any Zarr reader opens it)::

    zarr.json                    group; attributes["neuraleq_explore"] = the store's identity
                                 (format version, model digest, key, n, chunk, ...) and "complete"
    settings/                    float32 [n, P] physical settings, chunked [chunk, P]
    latents/                     float32 [n, L]   (columns "latents")
    novelty_db/                  float32 [n]      (columns "novelty": RMS dB to the nearest
                                                   training setting's response)
    nearest_word/, nearest_word_db/
                                 int32 [n], float32 [n] (columns "nearest_word": the word whose
                                                   centre response is nearest, and that RMS dB)
    top_novel/{rows,novelty_db,settings}      the k most novel rows, most novel first
    top_target/{rows,distance_db,settings}    the k rows nearest to the target response
    progress/chunk_done          uint8 [n_chunks], one file per chunk, written after its data
    progress/{novel,target}_{rows,score}      each chunk's own top k (what makes top k resumable)

Row ``i`` is the decoded draw of ``fold_in(key, i)`` (see ``generation.explore_range``), so a
store is a pure function of its identity: resuming, or splitting the rows across processes,
gives the same bytes. Writing lives in :mod:`neuraleq_jax.explore.writer`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import tensorstore as ts

from neuraleq_jax.fileio import NO_SPACE, atomic_write_text

FORMAT_VERSION = 1
ATTRIBUTE = "neuraleq_explore"
COLUMNS = ("latents", "novelty", "nearest_word")
# identity fields compared when a store is reopened, with the words used in the refusal
IDENTITY = {
    "format_version": "format version",
    "model_digest": "model",
    "key_data": "key/seed",
    "n": "n",
    "chunk": "chunk",
    "temperature": "temperature",
    "columns": "columns",
    "novel_k": "--novel",
    "target_k": "--near",
    "target_digest": "target",
    "param_names": "layout",
}


@dataclasses.dataclass(frozen=True)
class Target:
    """A response to find the nearest settings to: ``gains_db`` ``[F]`` at ``freqs`` ``[F]`` Hz."""

    freqs: tuple[float, ...]
    gains_db: tuple[float, ...]
    source: str = ""

    def digest(self) -> str:
        data = np.asarray([self.freqs, self.gains_db], np.float32).tobytes()
        return hashlib.sha256(data).hexdigest()


@dataclasses.dataclass(frozen=True)
class StoreSpec:
    """Everything that determines a store's contents (its identity) plus descriptive extras."""

    model_digest: str
    key_data: tuple[int, ...]
    n: int
    chunk: int
    param_names: tuple[str, ...]
    latent_dim: int
    vocabulary: tuple[str, ...]
    temperature: float = 1.0
    columns: tuple[str, ...] = ()
    novel_k: int = 0
    target_k: int = 0
    target: Target | None = None
    seed: int | None = None

    @property
    def n_chunks(self) -> int:
        return -(-self.n // self.chunk)

    def identity(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "model_digest": self.model_digest,
            "key_data": list(self.key_data),
            "n": self.n,
            "chunk": self.chunk,
            "temperature": float(self.temperature),
            "columns": sorted(self.columns),
            "novel_k": self.novel_k,
            "target_k": self.target_k,
            "target_digest": self.target.digest() if self.target else None,
            "param_names": list(self.param_names),
        }

    def attributes(self, complete: bool = False) -> dict:
        extras = {
            "seed": self.seed,
            "latent_dim": self.latent_dim,
            "vocabulary": list(self.vocabulary),
            "complete": complete,
            "target": None
            if self.target is None
            else {
                "freqs_hz": list(self.target.freqs),
                "gains_db": list(self.target.gains_db),
                "source": self.target.source,
            },
        }
        return {**self.identity(), **extras}


# ------------------------------------------------------------------ arrays


def _array_spec(path: Path, shape, dtype: str, chunk_rows: int, fill) -> dict:
    """TensorStore spec of an uncompressed Zarr v3 array chunked along rows (explored settings
    are noise-like floats: a compressor saves little and costs decoding throughput)."""
    return {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(path)},
        "metadata": {
            "shape": list(shape),
            "data_type": dtype,
            "chunk_grid": {
                "name": "regular",
                "configuration": {"chunk_shape": [chunk_rows] + list(shape[1:])},
            },
            "chunk_key_encoding": {"name": "default"},
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "fill_value": fill,
        },
    }


def array_layout(spec: StoreSpec) -> dict[str, tuple]:
    """``name → (shape, dtype, rows per chunk, fill)`` of every array written while exploring."""
    n, chunk, n_chunks, p = spec.n, spec.chunk, spec.n_chunks, len(spec.param_names)
    arrays = {
        "settings": ((n, p), "float32", chunk, "NaN"),
        "progress/chunk_done": ((n_chunks,), "uint8", 1, 0),
    }
    if "latents" in spec.columns:
        arrays["latents"] = ((n, spec.latent_dim), "float32", chunk, "NaN")
    if "novelty" in spec.columns:
        arrays["novelty_db"] = ((n,), "float32", chunk, "NaN")
    if "nearest_word" in spec.columns:
        arrays["nearest_word"] = ((n,), "int32", chunk, -1)
        arrays["nearest_word_db"] = ((n,), "float32", chunk, "NaN")
    for name, k in (("novel", spec.novel_k), ("target", spec.target_k)):
        if k:
            k_chunk = min(k, chunk)
            arrays[f"progress/{name}_rows"] = ((n_chunks, k_chunk), "int64", 1, -1)
            arrays[f"progress/{name}_score"] = ((n_chunks, k_chunk), "float32", 1, "NaN")
    return arrays


def _group_json(path: Path, attributes: dict | None = None) -> None:
    document = {"zarr_format": 3, "node_type": "group", "attributes": attributes or {}}
    atomic_write_text(path / "zarr.json", json.dumps(document, indent=1))


def open_array(path: Path, name: str, layout: tuple | None = None, *, write: bool = False):
    """Open ``path/name`` (created from ``layout`` when missing and ``layout`` is given)."""
    if layout is None:
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path / name)}}
        return ts.open(spec, read=True, write=write).result()
    spec = _array_spec(path / name, *layout)
    return ts.open(spec, create=True, open=True, read=True, write=True).result()


def write_array(path: Path, name: str, values, rows_per_chunk: int, fill) -> None:
    """Create (or replace) the array ``path/name`` holding ``values`` and wait for it."""
    values = np.asarray(values)
    spec = _array_spec(path / name, values.shape, values.dtype.name, max(rows_per_chunk, 1), fill)
    store = ts.open(spec, create=True, delete_existing=True).result()
    store.write(values).result()


# ------------------------------------------------------------------ identity


def read_attributes(path) -> dict | None:
    """The store's attributes, or None where ``path`` holds no exploration store."""
    document = Path(path) / "zarr.json"
    if not document.is_file():
        return None
    try:
        attributes = json.loads(document.read_text(encoding="utf-8")).get("attributes", {})
    except (json.JSONDecodeError, AttributeError):
        return None
    return attributes.get(ATTRIBUTE)


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 24 else text[:12] + "…"


def finished_chunks(path) -> int:
    """How many chunks the store at ``path`` has marked done (0 before its marker array
    exists, as after a crash or a full disk while it was being created)."""
    try:
        done = open_array(Path(path), "progress/chunk_done").read().result()
    except ValueError:  # TensorStore's NOT_FOUND (or a marker array never finished)
        return 0
    return int(np.count_nonzero(done))


def _foreign_entries(path: Path) -> list[str]:
    """What in the store's folder no store of ours writes (a temporary file of ours aside)."""
    ours = {"zarr.json", "progress", "settings", "top_novel", "top_target"}
    ours |= {"latents", "novelty_db", "nearest_word", "nearest_word_db"}
    return sorted(
        entry.name
        for entry in path.iterdir()
        if entry.name not in ours and not entry.name.startswith(".zarr.json.")
    )


def replaceable(path, spec: StoreSpec) -> bool:
    """Whether ``path`` holds an unfinished store made for another ``spec`` that has no
    finished chunk and nothing but its own files: replacing it loses nothing."""
    path = Path(path)
    attributes = read_attributes(path)
    if attributes is None or attributes.get("complete"):
        return False
    wanted = spec.identity()
    if all(attributes.get(k) == wanted[k] for k in IDENTITY):
        return False  # the same exploration: resume it
    return finished_chunks(path) == 0 and not _foreign_entries(path)


def remove_store(path) -> None:
    """Delete the store at ``path`` (only ever one that :func:`replaceable` allows)."""
    shutil.rmtree(path)


@contextlib.contextmanager
def disk_errors(path):
    """Report a full disk under the store as ``OSError(ENOSPC)`` naming ``path``: TensorStore
    raises it as a ValueError ``RESOURCE_EXHAUSTED: ... No space left on device``."""
    try:
        yield
    except ValueError as error:
        text = str(error)
        if not text.startswith("RESOURCE_EXHAUSTED") or not ("space" in text or "quota" in text):
            raise
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from error
    except OSError as error:
        if error.errno not in NO_SPACE:
            raise
        raise OSError(error.errno, error.strerror, str(path)) from error


def check_store(path, spec: StoreSpec) -> dict | None:
    """The attributes of the store at ``path`` when it was made for ``spec``; None where
    ``path`` does not exist or is empty. Raises ValueError (one line) for anything else."""
    path = Path(path)
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return None
    attributes = read_attributes(path)
    if attributes is None:
        raise ValueError(
            f"{path} exists and is not an exploration store; choose a new --out folder or delete it"
        )
    wanted = spec.identity()
    differ = [
        f"{IDENTITY[k]} {_short(attributes.get(k))} in the store, {_short(wanted[k])} asked"
        for k in IDENTITY
        if attributes.get(k) != wanted[k]
    ]
    if differ:
        finished = finished_chunks(path) if not attributes.get("complete") else None
        removal = (
            f", or delete it (rm -r {path}; it holds no finished chunk)" if finished == 0 else ""
        )
        raise ValueError(
            f"{path} holds another exploration ({'; '.join(differ)}); rerun with "
            f"the same model and options to resume, or choose a new --out folder{removal}"
        )
    return attributes


def create_store(path, spec: StoreSpec) -> None:
    """Write the group's identity, then open-or-create every array (so a crash during creation
    is completed by the next run)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if read_attributes(path) is None:
        _group_json(path, {ATTRIBUTE: spec.attributes()})
    (path / "progress").mkdir(exist_ok=True)
    _group_json(path / "progress")
    for name, layout in array_layout(spec).items():
        open_array(path, name, layout)


def mark_complete(path, spec: StoreSpec) -> None:
    """Record in the group's attributes that every chunk and the top-k lists are written."""
    path = Path(path)
    for name in ("top_novel", "top_target"):
        if (path / name).is_dir():
            _group_json(path / name)
    _group_json(path, {ATTRIBUTE: spec.attributes(complete=True)})


# ------------------------------------------------------------------ reading


class ArrayView:
    """A lazily read array: NumPy indexing reads only the chunks it touches.

    ``view[a:b]`` → ``np.ndarray``; ``view.tensorstore`` is the underlying TensorStore (for
    asynchronous reads or TensorStore indexing).
    """

    def __init__(self, store):
        self.tensorstore = store

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.tensorstore.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.tensorstore.dtype.numpy_dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        return self.tensorstore[index].read().result()

    def __array__(self, dtype=None, copy=None):
        values = self[...]
        return values if dtype is None else values.astype(dtype)

    def __repr__(self) -> str:
        return f"ArrayView(shape={self.shape}, dtype={self.dtype})"


@dataclasses.dataclass
class ExploreStore:
    """An opened store: ``attributes`` (identity, ``complete``) and ``arrays`` by name
    (``"settings"``, ``"novelty_db"``, ``"top_novel/rows"``, ...), each an :class:`ArrayView`."""

    path: Path
    attributes: dict
    arrays: dict[str, ArrayView]

    @property
    def complete(self) -> bool:
        return bool(self.attributes.get("complete"))

    @property
    def settings(self) -> ArrayView:
        return self.arrays["settings"]

    def __getitem__(self, name: str) -> ArrayView:
        if name not in self.arrays:
            raise KeyError(f"{self.path} has no array {name!r}; it has {sorted(self.arrays)}")
        return self.arrays[name]


def open_store(path) -> ExploreStore:
    """Open the exploration store at ``path`` for lazy reading (nothing is read up front).

    Example: ``open_store("x.zarr").settings[1000:2000]`` → float32 ``[1000, 15]``.
    """
    path = Path(path)
    attributes = read_attributes(path)
    if attributes is None:
        raise FileNotFoundError(
            f"{path} is not an exploration store (no zarr.json with {ATTRIBUTE!r} attributes)"
        )
    arrays = {}
    for document in sorted(path.glob("**/zarr.json")):
        name = document.parent.relative_to(path).as_posix()
        if json.loads(document.read_text(encoding="utf-8")).get("node_type") == "array":
            arrays[name] = ArrayView(open_array(path, name))
    return ExploreStore(path=path, attributes=attributes, arrays=arrays)
