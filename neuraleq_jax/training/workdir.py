"""A training workdir: the names of its files (defined here only), one run at a time,
writability checked up front, and a metrics log that survives a crash in the middle of a write.

* :class:`WorkdirLock` takes an exclusive ``flock`` on ``W/.lock`` and writes the holder's pid,
  host and start time into it. The kernel drops the lock when its holder dies, however it dies,
  so a lock is never stale in the sense of blocking; a lock file that still names a holder when
  the lock is free tells that its holder died without releasing it, and the next run says so.
* :func:`check_writable` answers "can files be created in this folder?" before any work starts.
* :func:`read_metrics` reads ``metrics.jsonl``, dropping a cut-off last line (the one a crash
  mid-write leaves) and naming the file and line of any other damaged line.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import logging
import os
import socket
from pathlib import Path

# ------------------------------------------------------------------ file names
# Everything a training workdir W holds, by the module that writes it:
CONFIG_FILE = "config.json"  # the ExperimentConfig of the run (train)
TRAINING_METRICS_FILE = "metrics.jsonl"  # one JSON line per epoch (training.fit)
CHECKPOINT_DIR = "checkpoints"  # Orbax steps numbered by epochs done (checkpoints)
BUNDLE_DIR = "bundle"  # the final model (checkpoints.save_bundle), holding:
BUNDLE_JSON = "bundle.json"  # configs, vocabulary, layout, digest
BUNDLE_PARAMS_DIR = "params"  # the parameters (Orbax)
WORD_MODEL_FILE = "word_model.npz"  # the word model's arrays
LOCK_FILE = ".lock"  # the running process (WorkdirLock)
EVALUATION_METRICS_FILE = "metrics.json"  # the evaluation's figures (evaluate)
REPORT_FILE = "report.md"  # the evaluation's report (evaluate)
PLOTS_DIR = "plots"  # the evaluation's PNG plots (evaluate)

log = logging.getLogger(__name__)


class WorkdirBusyError(RuntimeError):
    """Another live process holds the workdir's lock."""


class NotWritableError(PermissionError):
    """Files cannot be created in a folder that a command must write to."""


# ------------------------------------------------------------------ writability


def check_writable(folder: str | os.PathLike, *, purpose: str, hint: str = "") -> None:
    """Raise :class:`NotWritableError` unless files can be created in ``folder``.

    A folder that does not exist yet counts as writable when its nearest existing ancestor is a
    writable folder (it would be created there). ``purpose`` completes "cannot write …",
    ``hint`` is appended to the message (what to do instead). A path that is a regular file
    raises :class:`NotADirectoryError`.
    """
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{existing} is a file, not a folder; {purpose} need a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = folder if existing == folder else f"{existing} (to create {folder})"
        raise NotWritableError(
            f"cannot write {purpose}: {where} is not writable" + (f". {hint}" if hint else "")
        )


# ------------------------------------------------------------------ exclusive lock


def _holder_text(record: dict) -> str:
    parts = [f"pid {record.get('pid', '?')} on host {record.get('host', '?')}"]
    if record.get("since"):
        parts.append(f"since {record['since']}")
    return ", ".join(parts)


def _read_holder(fd: int) -> dict | None:
    """The holder record in the open lock file, or None when it is empty or unreadable."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode("utf-8", errors="replace").strip()
    if not text:
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return {"pid": "?", "host": "?", "raw": text[:80]}
    return record if isinstance(record, dict) else {"pid": "?", "host": "?"}


class WorkdirLock:
    """Exclusive lock on ``workdir/.lock`` for the life of a training run.

    Use as a context manager, or call :meth:`acquire` and :meth:`release`. :meth:`acquire`
    raises :class:`WorkdirBusyError` at once (no waiting) when another process holds the
    lock, naming that process's pid and host.
    """

    def __init__(self, workdir: str | os.PathLike):
        self.path = Path(workdir) / LOCK_FILE
        self._fd: int | None = None
        self.previous_holder: dict | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            holder = _read_holder(fd)
            os.close(fd)
            who = _holder_text(holder) if holder else "a process that is just starting"
            raise WorkdirBusyError(
                f"{self.path.parent} is in use by another training run ({who}); wait for it to "
                f"end, or use another --workdir"
            ) from None
        self.previous_holder = _read_holder(fd)
        if self.previous_holder is not None:
            log.warning(
                "%s was left by %s, which ended without releasing it; taking it over",
                self.path,
                _holder_text(self.previous_holder),
            )
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Empty the lock file (a clean end leaves no holder behind) and unlock."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> WorkdirLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# ------------------------------------------------------------------ metrics log


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a JSON-lines metrics file (``[]`` when there is none).

    A last line that does not parse is what a crash in the middle of appending leaves: it is
    dropped with a logged note naming the file. Any other line that does not parse raises
    ValueError naming the file and the line number.
    """
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
        except ValueError as error:
            if number == len(lines):
                log.warning(
                    "%s: dropped its last line, cut off mid-write (%d characters)", path, len(line)
                )
                break
            raise ValueError(
                f"{path}, line {number}, is damaged ({error}); fix or delete that line to resume"
            ) from None
        records.append(record)
    return records
