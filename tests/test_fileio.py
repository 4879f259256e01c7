"""Atomic writes: a failed write leaves the old file and no temporary files behind."""

import errno
import os

import numpy as np
import pytest

from neuraleq_jax import fileio


def test_text_bytes_and_npz_round_trip(tmp_path):
    fileio.atomic_write_text(tmp_path / "a" / "t.txt", "héllo")
    assert (tmp_path / "a" / "t.txt").read_text(encoding="utf-8") == "héllo"
    fileio.atomic_save_npz(tmp_path / "x.npz", values=np.arange(3.0), names=np.array(["a", "b"]))
    with np.load(tmp_path / "x.npz", allow_pickle=False) as arrays:
        np.testing.assert_array_equal(arrays["values"], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="Python objects"):
        fileio.atomic_save_npz(tmp_path / "y.npz", bad=np.array([{"a": 1}], dtype=object))
    assert not (tmp_path / "y.npz").exists()


def test_failure_keeps_old_file_and_cleans_up(tmp_path, monkeypatch):
    target = tmp_path / "keep.txt"
    fileio.atomic_write_text(target, "old")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        fileio.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]


def test_atomic_path_removes_temporary_on_error(tmp_path):
    with pytest.raises(RuntimeError), fileio.atomic_path(tmp_path / "out.bin") as temporary:
        temporary.write_bytes(b"partial")
        raise RuntimeError("writer failed")
    assert os.listdir(tmp_path) == []


def test_failures_name_the_file_asked_for_not_the_temporary(tmp_path, monkeypatch):
    notes = tmp_path / "notes.txt"
    notes.write_text("kept")
    for target in (notes / "out.json", notes / "deeper" / "out.json"):
        with pytest.raises(NotADirectoryError, match=f"cannot write {target}: {notes} is a file"):
            fileio.atomic_write_text(target, "{}")
    assert notes.read_text() == "kept"

    def full(**_):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".out.json.x.tmp"))

    monkeypatch.setattr(fileio.tempfile, "mkstemp", full)
    with pytest.raises(OSError, match=r"No space left on device: '.*/out\.json'$"):
        fileio.atomic_write_text(tmp_path / "out.json", "{}")


def test_strict_json_turns_numpy_and_non_finite_values_into_json(tmp_path):
    import json

    value = {
        1: (np.float32(0.5), np.int64(3)),
        "a": np.array([[1.0, np.nan], [np.inf, -np.inf]]),
        "b": [float("nan"), True, None, "x"],
    }
    expected = {"1": [0.5, 3], "a": [[1.0, None], [None, None]], "b": [None, True, None, "x"]}
    assert fileio.jsonable(value) == expected
    indented = fileio.atomic_write_json(tmp_path / "a.json", value)
    text = indented.read_text()
    assert json.loads(text) == expected and text == json.dumps(expected, indent=2) + "\n"
    inline = fileio.atomic_write_json(tmp_path / "b.json", value, inline_number_lists=True)
    lines = inline.read_text().splitlines()
    assert json.loads("\n".join(lines)) == expected
    # a list of plain numbers stays on one line; one holding anything else is spread out
    assert ' "1": [0.5,3],' in lines and ' "b": [' in lines
