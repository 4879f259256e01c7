"""How the ``neuraleq`` command shows settings: a table or any preset format (JSON, CSV,
Equalizer APO, REW, EasyEffects), printed or written to a file, streamed chunk by chunk.

One rule for the one-setting formats (APO, REW, EasyEffects), to a file or stdout alike: they
hold exactly one setting, and asking for more is refused before anything is made
(:func:`check_output`), naming the command's own fix.

Output of any size goes through :func:`emit`: each chunk of settings is formatted and written
before the next is made, so memory stays bounded by one chunk; a file is written to a
temporary name beside it and renamed at the end (see :mod:`neuraleq_jax.fileio`), so an
interrupted or refused write leaves any earlier file intact. Joined, the streamed pieces are
exactly the text :mod:`neuraleq_jax.presets.registry` writes in one piece.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from neuraleq_jax.cli.common import CommandError

STREAM_CHUNK = 8192  # settings generated, formatted and written at a time
LABEL_WIDTH = 23


def short_label(label: str, width: int = LABEL_WIDTH) -> str:
    """``label`` in at most ``width`` characters, keeping its last word (``#12``, ``0.25``):
    the middle of the rest is replaced by ``…`` so that rows of long blends stay distinct."""
    if len(label) <= width:
        return label
    head, space, tail = label.rpartition(" ")
    if not space or len(tail) > width // 2:
        head, tail = label, ""
    room = width - len(tail) - (1 if tail else 0) - 1  # one column for the ellipsis
    left = (room + 1) // 2
    shortened = head[:left] + "…" + head[len(head) - (room - left) :] if room > 0 else "…"
    return f"{shortened} {tail}" if tail else shortened


def _table_rows(settings_NxP, labels) -> str:
    rows = []
    for label, row in zip(labels, np.asarray(settings_NxP, np.float64)):
        cells = "".join(f"{g:>8.2f}{f:>8.0f}{q:>6.2f}" for g, f, q in row.reshape(-1, 3))
        rows.append(f"{short_label(label):<{LABEL_WIDTH + 1}}{cells}\n")
    return "".join(rows)


def table(settings_NxP, labels, layout) -> str:
    """A readable fixed-width table: one row per setting, gain/freq/Q per band."""
    return _table_head(layout) + _table_rows(settings_NxP, labels)


def _table_head(layout) -> str:
    return (
        f"{'setting':<{LABEL_WIDTH + 1}}"
        + "".join(f"{f'b{i + 1} dB':>8}{'Hz':>8}{'Q':>6}" for i in range(layout.n_bands))
        + "\n"
    )


class _Writer:
    """Text pieces of one output: stdout, or a temporary file renamed over ``out`` at the end
    (so an interrupted or refused write leaves any earlier file intact)."""

    def __init__(self, out: str | None, count: int):
        self.out, self.count, self.rows_written, self.bytes_written = out, count, 0, 0
        self._context = self._stream = None

    def __enter__(self):
        if self.out is not None:
            from neuraleq_jax.fileio import atomic_path

            self._context = atomic_path(self.out)
            self._stream = open(self._context.__enter__(), "w", encoding="utf-8")
        return self

    def write(self, text: str, rows: int = 0) -> None:
        if self._stream is None:
            sys.stdout.write(text)
            return
        self._stream.write(text)
        if self.rows_written == 0:  # size the whole file from its first rows
            self.bytes_written += len(text.encode("utf-8"))
            if rows:
                self._check_space(rows)
        self.rows_written += rows

    def _check_space(self, rows: int) -> None:
        """After the first rows: refuse at once if the whole file cannot fit on the disk."""
        estimate = self.bytes_written / rows * self.count
        free = shutil.disk_usage(Path(self.out).resolve().parent).free
        if estimate > free:
            raise OSError(
                errno.ENOSPC,
                f"{self.out} would take about {estimate / 1e9:.1f} GB "
                f"and only {free / 1e9:.1f} GB are free there; ask for "
                f"fewer settings",
            )

    def __exit__(self, *exc_info):
        if self._stream is None:
            return False
        try:
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()
        except OSError:  # a full disk shows here: the temporary file goes, the error names out
            with contextlib.suppress(OSError):
                self._stream.close()
            return self._context.__exit__(*sys.exc_info())
        return self._context.__exit__(*exc_info)


def _pieces(chunks: Iterable[np.ndarray], fmt: str, layout, label: Callable[[int], str]):
    """``(text, rows)`` pieces of the whole output in format ``fmt``, one chunk at a time;
    joined, they equal the one-piece text of :mod:`neuraleq_jax.presets.registry` (or the table)."""
    from neuraleq_jax import presets

    first = 0
    for chunk in chunks:
        names = [label(first + i) for i in range(len(chunk))]
        if fmt == "table":
            text = (_table_head(layout) if first == 0 else "") + _table_rows(chunk, names)
        elif fmt == "csv":
            text = presets.csv_text(chunk, names=names, layout=layout, header=first == 0)
        elif fmt == "json":
            document = presets.preset_dict(chunk, names=names, layout=layout)
            text = "".join(
                ("," if first + i else "")
                + "\n    "
                + json.dumps(entry, indent=2).replace("\n", "\n    ")
                for i, entry in enumerate(document.pop("presets"))
            )
            if first == 0:  # the document's other keys, then the opening of its preset list
                text = json.dumps(document, indent=2)[:-2] + ',\n  "presets": [' + text
        else:  # a one-setting format: check_output let one setting through
            text = presets.preset_text(chunk, fmt, names=names, layout=layout)
        yield text, len(chunk)
        first += len(chunk)
    if fmt == "json":
        yield "\n  ]\n}\n", 0


def holds_one_setting(fmt: str) -> bool:
    """Whether output format ``fmt`` (``table`` or a preset format) holds exactly one setting."""
    if fmt == "table":
        return False
    from neuraleq_jax.presets import preset_format

    return preset_format(fmt).one_setting


def check_output(fmt: str, count: int, out: str | None, fix: str) -> None:
    """Refuse, before anything is made, what cannot be written: a table to a file, or
    ``count`` > 1 settings in a one-setting format, to a file or stdout alike. ``fix``: what
    the user changes, in the command's own terms (``use -n 1, or --format json or csv for
    several``)."""
    if out and fmt == "table":
        from neuraleq_jax.presets import FORMATS

        raise CommandError(
            f"--out needs a preset format: --format one of {', '.join(FORMATS)} "
            f"(or a suffix that names one)"
        )
    if count > 1 and holds_one_setting(fmt):
        from neuraleq_jax.presets import preset_format

        raise CommandError(
            f"the {fmt} format ({preset_format(fmt).title}) holds one setting and this would "
            f"write {count}; {fix}"
        )


def emit(
    chunks: Iterable[np.ndarray],
    count: int,
    layout,
    fmt: str,
    out: str | None,
    label: Callable[[int], str],
    check_stop: Callable[[], None] = lambda: None,
) -> None:
    """Print ``count`` settings (given as chunks ``[C, P]``) in ``fmt``, or write them to
    ``out`` atomically, streaming: memory stays bounded by one chunk, and a progress bar
    (stderr) shows when the file holds more than one chunk. ``check_stop`` is called before
    each chunk and before the file is put in place; what it raises abandons the output."""
    check_output(fmt, count, out, "ask for one setting, or use --format json or csv for several")
    from tqdm.auto import tqdm

    with (
        _Writer(out, count) as writer,
        tqdm(
            total=count,
            unit="setting",
            file=sys.stderr,
            disable=out is None or count <= STREAM_CHUNK,
        ) as bar,
    ):
        for text, rows in _pieces(chunks, fmt, layout, label):
            check_stop()
            writer.write(text, rows)
            bar.update(rows)
        check_stop()
    if out:
        print(f"wrote {count} setting(s) to {out}")
