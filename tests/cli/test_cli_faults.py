"""The ``neuraleq`` command under faults: damaged models, awkward inputs, huge outputs.

The session's tiny model (conftest.tiny_workdir) is shared; each test damages a copy of it for
real (truncated files, garbled JSON, removed folders) and checks what a user sees: one line on
stderr, the exit status of cli.py's rule (2 wrong command line, 1 model or file failure), and
advice that is true.
"""

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import TINY_TRAIN_ARGS as TINY

from neuraleq_jax import cli, presets
from neuraleq_jax.cli import output as output
from neuraleq_jax.model import paramspace
from neuraleq_jax.training import checkpoints

LAYOUT = paramspace.DEFAULT_LAYOUT


def train_tiny(path: Path) -> None:
    """The command that trained the session's tiny model (conftest.tiny_workdir)."""
    assert cli.main(["train", "--workdir", str(path), *TINY]) == 0


@pytest.fixture(scope="module")
def workdir(tiny_workdir) -> Path:
    return tiny_workdir


@pytest.fixture(scope="module")
def system(tiny_system):
    return tiny_system  # the workdir's model, loaded once per session


@pytest.fixture
def shared_system(system, monkeypatch):
    """The CLI uses the module's loaded model, so its executables compile once per module
    (the loading path itself is what the damaged-model tests exercise)."""
    monkeypatch.setattr(cli, "_load_system", lambda workdir: system)
    return system


def copy_of(workdir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(workdir, target)
    return target


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def damage(run: Path, how: str) -> str:
    """Damage the bundle in ``run``; returns the part of the bundle the message must name."""
    bundle = run / "bundle"
    if how == "bundle_json":
        truncate(bundle / "bundle.json")
        return "bundle.json"
    if how == "npz":
        truncate(bundle / "word_model.npz")
        return "word_model.npz"
    if how == "params_missing":
        shutil.rmtree(bundle / "params")
        return "params"
    for chunk in (bundle / "params").rglob("d/*"):  # the parameter data itself
        truncate(chunk)
    return "params"


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{text}"
    return lines[0]


# ------------------------------------------------------------------ damaged or foreign models


@pytest.mark.parametrize("how", ["bundle_json", "npz", "params_missing", "params_data"])
def test_damaged_model_is_one_line_with_exit_1(workdir, tmp_path, capsys, how):
    run = copy_of(workdir, tmp_path)
    part = damage(run, how)
    assert cli.main(["generate", "warm", "--workdir", str(run)]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("neuraleq generate: ") and part in line
    assert "Traceback" not in line and "'driver'" not in line and len(line) < 700
    # the advice: rerun the training command (true: see test_rerunning_training_rebuilds_...)
    assert f"neuraleq train --workdir {run.resolve()}" in line and "Delete" not in line


def test_damaged_parameters_end_to_end_print_exactly_one_line(workdir, tmp_path):
    """A real process: no traceback, no TensorStore spec, no 'Event loop is closed' noise."""
    run = copy_of(workdir, tmp_path)
    damage(run, "params_data")
    result = subprocess.run(
        [sys.executable, "-m", "neuraleq_jax.cli", "generate", "warm", "--workdir", str(run)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "corrupt or incomplete" in line and "Event loop" not in result.stderr


def test_debug_flag_shows_the_traceback(workdir, tmp_path, capsys):
    run = copy_of(workdir, tmp_path)
    damage(run, "bundle_json")
    assert cli.main(["--debug", "generate", "warm", "--workdir", str(run)]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "CheckpointError" in err
    assert err.strip().splitlines()[-1].startswith("neuraleq generate: model bundle")


def test_rerunning_training_rebuilds_a_damaged_bundle(workdir, tmp_path, capsys):
    """The advice given for a damaged bundle works: the same training command rebuilds it
    from the newest checkpoint, identical to the bundle that was lost."""
    run = copy_of(workdir, tmp_path)
    damage(run, "params_data")
    with pytest.raises(checkpoints.CheckpointError, match="Rerun the training command"):
        checkpoints.load_bundle(run)
    train_tiny(run)  # the same command again
    rebuilt, original = checkpoints.load_bundle(run), checkpoints.load_bundle(workdir)
    assert checkpoints.tree_digest(rebuilt.params) == checkpoints.tree_digest(original.params)
    for key, value in original.word_model.items():
        np.testing.assert_array_equal(rebuilt.word_model[key], value)


def test_damaged_training_checkpoint_advice_is_true(workdir, tmp_path, capsys):
    """'Delete it and rerun': the run resumes from an earlier checkpoint or, as here where the
    damaged one is the only one, starts over and ends with the same model."""
    run = copy_of(workdir, tmp_path)
    (newest,) = sorted((run / "checkpoints").glob("[0-9]*"), key=lambda d: int(d.name))[-1:]
    for chunk in newest.rglob("d/*"):
        truncate(chunk)
    assert cli.main(["train", "--workdir", str(run), *TINY]) == 1
    line = one_line(capsys.readouterr().err)
    assert f"Delete {newest.resolve()} and rerun the training command" in line
    shutil.rmtree(newest)
    train_tiny(run)
    rebuilt, original = checkpoints.load_bundle(run), checkpoints.load_bundle(workdir)
    assert checkpoints.tree_digest(rebuilt.params) == checkpoints.tree_digest(original.params)


def test_bundle_without_checkpoints_is_not_told_to_rerun_training(workdir, tmp_path):
    saved = tmp_path / "model"
    shutil.copytree(workdir / "bundle", saved)  # a bundle on its own, as system.save writes
    truncate(saved / "word_model.npz")
    with pytest.raises(checkpoints.CheckpointError, match="No training checkpoints"):
        checkpoints.load_bundle(saved)


def test_newer_bundle_format_is_refused_with_both_versions(workdir, tmp_path, capsys):
    run = copy_of(workdir, tmp_path)
    meta_path = run / "bundle" / "bundle.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = checkpoints.FORMAT_VERSION + 98
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(checkpoints.BundleVersionError):
        checkpoints.load_bundle(run)
    assert cli.main(["generate", "warm", "--workdir", str(run)]) == 1
    line = one_line(capsys.readouterr().err)
    assert f"format_version {checkpoints.FORMAT_VERSION + 98}" in line
    assert f"up to {checkpoints.FORMAT_VERSION}" in line


def test_workdir_that_is_a_file_is_named_as_such(tmp_path, capsys):
    not_a_folder = tmp_path / "model.json"
    not_a_folder.write_text("{}")
    assert cli.main(["generate", "warm", "--workdir", str(not_a_folder)]) == 1
    line = one_line(capsys.readouterr().err)
    assert "is a file, not a folder" in line and "does not exist" not in line


# ------------------------------------------------------------------ exit codes and one line


def test_bad_usage_is_one_line_with_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["generate", "warm", "-n", "zero"])
    assert exit_info.value.code == 2
    assert "--help" in one_line(capsys.readouterr().err)


def test_unexpected_errors_are_one_line_with_exit_1(monkeypatch, capsys):
    def broken(workdir):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(cli, "_load_system", broken)
    assert cli.main(["generate", "warm"]) == 1
    line = one_line(capsys.readouterr().err)
    assert "ZeroDivisionError: division by zero" in line and "--debug" in line


# ------------------------------------------------------------------ apply


@pytest.fixture
def loud_audio(tmp_path):
    """Float and 16-bit copies of the same noise, peaking just below full scale."""
    noise = np.clip(0.5 * np.random.default_rng(0).standard_normal((12_000, 2)), -0.99, 0.99)
    paths = {}
    for subtype in ("FLOAT", "PCM_16"):
        paths[subtype] = tmp_path / f"in_{subtype}.wav"
        sf.write(paths[subtype], noise, 48_000, subtype=subtype)
    return paths


def boost_setting(gain_db: float = 12.0) -> np.ndarray:
    setting = np.array(paramspace.flat_setting(), np.float64)
    setting[LAYOUT.gain_indices] = gain_db
    return setting


def rms_change_db(path_in, path_out) -> float:
    before, after = sf.read(path_in)[0], sf.read(path_out)[0]
    return 10 * np.log10(np.mean(after**2) / np.mean(before**2))


def test_apply_prints_a_summary_and_json_on_request(loud_audio, tmp_path, capsys):
    preset = presets.write_preset(tmp_path / "boost.json", boost_setting(3.0))
    out = tmp_path / "out.wav"
    assert cli.main(["apply", str(preset), str(loud_audio["PCM_16"]), str(out)]) == 0
    summary = capsys.readouterr().out
    assert len(summary.splitlines()) < 15
    bands = re.findall(r"band (\d) .*?([+-]\d+\.\d\d) dB", summary)
    assert [int(b) for b, _ in bands] == [1, 2, 3, 4, 5]
    assert all(float(gain) == 3.0 for _, gain in bands)
    change = float(re.search(r"RMS level changed by ([+-]\d+\.\d\d) dB", summary)[1])
    assert change == pytest.approx(rms_change_db(loud_audio["PCM_16"], out), abs=0.006)
    assert re.search(r"peak: .*dBFS in, .*dBFS out", summary)
    assert summary.strip().splitlines()[-1].startswith(f"wrote {out}")
    assert (
        cli.main(
            ["apply", str(preset), str(loud_audio["PCM_16"]), str(out), "--overwrite", "--json"]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["out_path"] == str(out) and len(report["setting"]) == LAYOUT.n_params


def test_float_output_has_peaks_above_full_scale_not_clipping(loud_audio, tmp_path, capsys):
    preset = presets.write_preset(tmp_path / "boost.json", boost_setting())
    out_float, out_int = tmp_path / "float.wav", tmp_path / "int.wav"
    assert cli.main(["apply", str(preset), str(loud_audio["FLOAT"]), str(out_float)]) == 0
    captured = capsys.readouterr()
    assert sf.info(str(out_float)).subtype == "FLOAT" and np.abs(sf.read(out_float)[0]).max() > 1
    assert "peaks above full scale" in captured.out and "--peaks limit" in captured.out
    assert "clip" not in (captured.out + captured.err).replace("players may clip", "").lower()
    assert cli.main(["apply", str(preset), str(loud_audio["PCM_16"]), str(out_int)]) == 0
    captured = capsys.readouterr()
    assert "clipped by the PCM_16" in captured.out and "--peaks limit" in captured.out
    assert "peak_mode" not in captured.out + captured.err


def test_peaks_error_names_the_flag_and_writes_nothing(loud_audio, tmp_path, capsys):
    preset = presets.write_preset(tmp_path / "boost.json", boost_setting())
    out = tmp_path / "out.wav"
    assert (
        cli.main(["apply", str(preset), str(loud_audio["PCM_16"]), str(out), "--peaks", "error"])
        == 1
    )
    line = one_line(capsys.readouterr().err)
    assert "--peaks limit" in line and "peak_mode" not in line and not out.exists()


def test_apply_needs_index_for_a_preset_file_with_several(loud_audio, tmp_path, capsys):
    preset = presets.write_preset(
        tmp_path / "two.json", np.stack([boost_setting(), paramspace.flat_setting()])
    )
    source, out = loud_audio["PCM_16"], tmp_path / "out.wav"
    assert cli.main(["apply", str(preset), str(source), str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert "holds 2 settings" in line and "--index" in line and not out.exists()
    assert cli.main(["apply", str(preset), str(source), str(out), "--index", "3"]) == 2
    assert "holds 2 setting" in one_line(capsys.readouterr().err)
    assert cli.main(["apply", str(preset), str(source), str(out), "--index", "2"]) == 0
    # the second setting is flat: the output is the input, up to one 16-bit step
    np.testing.assert_allclose(sf.read(out)[0], sf.read(source)[0], atol=1.5 / 32768)


# ------------------------------------------------------------------ generate's output


def test_readme_apo_command_writes_one_setting(workdir, shared_system, tmp_path, capsys):
    out = tmp_path / "warmish.txt"
    assert (
        cli.main(
            [
                "generate",
                "0.7 warm + 0.3 bright",
                "--format",
                "apo",
                "--out",
                str(out),
                "--workdir",
                str(workdir),
            ]
        )
        == 0
    )
    settings, _ = presets.read_preset(out)
    first = shared_system.generate_eq_from_semantic(
        "0.7 warm + 0.3 bright", 1, seed=0, as_array=True
    )
    # APO text rounds gains and frequencies to 0.01 and Q to 1e-4: half a unit, plus float32
    half_unit = np.tile([0.005, 0.005, 0.00005], LAYOUT.n_bands)
    assert np.all(np.abs(settings[0] - first[0]) <= half_unit + 2e-7 * np.abs(first[0]))
    capsys.readouterr()
    assert cli.main(["generate", "warm", "--workdir", str(workdir)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1 + 5  # tables keep 5


def test_out_suffix_chooses_the_format_and_format_wins(workdir, shared_system, tmp_path, capsys):
    as_json = tmp_path / "w.json"
    assert (
        cli.main(["generate", "warm", "-n", "2", "--out", str(as_json), "--workdir", str(workdir)])
        == 0
    )
    assert json.loads(as_json.read_text())["format"] == "neuraleq-preset"
    forced = tmp_path / "forced.json"
    assert (
        cli.main(
            [
                "generate",
                "warm",
                "-n",
                "2",
                "--format",
                "csv",
                "--out",
                str(forced),
                "--workdir",
                str(workdir),
            ]
        )
        == 0
    )
    assert presets.read_preset(forced, format="csv")[0].shape == (2, LAYOUT.n_params)
    assert "suffix suggests json" in capsys.readouterr().err
    assert (
        cli.main(["generate", "warm", "--out", str(tmp_path / "w.dat"), "--workdir", str(workdir)])
        == 2
    )
    refusal = one_line(capsys.readouterr().err)
    assert "--format" in refusal and ".zarr" not in refusal
    # explore's refusal also names the outputs only it writes
    folder = str(tmp_path / "explored")
    assert cli.main(["explore", "-n", "4", "--out", folder, "--workdir", str(workdir)]) == 2
    assert ".npz (arrays), .zarr (a store folder) or --format" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_streamed_output_equals_the_one_piece_text(
    workdir, shared_system, tmp_path, capsys, monkeypatch, fmt
):
    # small chunks (the bounded-memory test's): the joining is what is tested, not the size
    monkeypatch.setattr(output, "STREAM_CHUNK", 1024)
    count = 2 * output.STREAM_CHUNK + 3  # three chunks, the last one short
    out = tmp_path / f"many.{fmt}"
    assert (
        cli.main(
            ["generate", "warm", "-n", str(count), "--out", str(out), "--workdir", str(workdir)]
        )
        == 0
    )
    # the same settings in one array (chunked and one-piece generation agree within round-off:
    # test_generation's tiled test), written in one piece
    settings = np.concatenate(
        list(shared_system.generate_eq_chunks("warm", count, seed=0, chunk=output.STREAM_CHUNK))
    )
    names = [f"warm #{i + 1}" for i in range(count)]
    reference = tmp_path / f"reference.{fmt}"
    presets.write_preset(reference, settings, names=names)
    assert out.read_text() == reference.read_text()
    assert f"{count}/{count}" in capsys.readouterr().err  # the progress bar


def test_explore_streams_its_text_output(workdir, shared_system, tmp_path, monkeypatch):
    monkeypatch.setattr(output, "STREAM_CHUNK", 1024)
    count = 2 * output.STREAM_CHUNK + 3
    out = tmp_path / "explored.csv"
    assert (
        cli.main(["explore", "-n", str(count), "--out", str(out), "--workdir", str(workdir)]) == 0
    )
    settings = shared_system.explore_latent_space(count, seed=0, as_array=True)
    reference = presets.write_preset(
        tmp_path / "reference.csv", settings, names=[f"explore #{i + 1}" for i in range(count)]
    )
    assert out.read_text() == reference.read_text()


def test_large_output_streams_in_bounded_memory(workdir, shared_system, tmp_path, monkeypatch):
    monkeypatch.setattr(output, "STREAM_CHUNK", 1024)
    count = 16 * output.STREAM_CHUNK
    out = tmp_path / "large.csv"
    next(shared_system.generate_eq_chunks("warm", count, chunk=output.STREAM_CHUNK))  # compile
    tracemalloc.start()
    try:
        assert (
            cli.main(
                ["generate", "warm", "-n", str(count), "--out", str(out), "--workdir", str(workdir)]
            )
            == 0
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = out.stat().st_size
    assert size > 4 * 1024 * 1024 and len(out.read_text().splitlines()) == 1 + count
    # holding the whole text (or the whole [N, 15] array and its rows) would need > size
    assert peak < size / 3, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB file"


def test_output_that_cannot_fit_is_refused_and_leaves_nothing(
    workdir, shared_system, tmp_path, monkeypatch, capsys
):
    folder = tmp_path / "out"
    folder.mkdir()
    usage = collections.namedtuple("usage", "total used free")(10_000, 9_000, 1_000)
    monkeypatch.setattr(output.shutil, "disk_usage", lambda path: usage)
    assert (
        cli.main(
            [
                "generate",
                "warm",
                "-n",
                "100",
                "--out",
                str(folder / "f.csv"),
                "--workdir",
                str(workdir),
            ]
        )
        == 1
    )
    assert "would take about" in one_line(capsys.readouterr().err)
    assert list(folder.iterdir()) == []


def test_unwritable_output_folder_is_a_failure_with_exit_1(
    workdir, shared_system, tmp_path, monkeypatch, capsys
):
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() == 0:  # root writes into read-only folders; refuse the way the OS would

        def refuse(*args, dir=None, **kwargs):
            raise PermissionError(13, "Permission denied", str(dir))

        monkeypatch.setattr("neuraleq_jax.fileio.tempfile.mkstemp", refuse)
    folder.chmod(0o500)
    try:
        assert (
            cli.main(
                ["generate", "warm", "--out", str(folder / "w.json"), "--workdir", str(workdir)]
            )
            == 1
        )
    finally:
        folder.chmod(0o700)
    assert "Permission denied" in one_line(capsys.readouterr().err)
    assert list(folder.iterdir()) == []


def test_sigterm_while_writing_leaves_no_file_behind(workdir, tmp_path):
    """A real process stopped mid-write: exit 143, one line, neither the target nor the
    temporary file remains."""
    folder = tmp_path / "out"
    folder.mkdir()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neuraleq_jax.cli",
            "generate",
            "warm",
            "-n",
            "100000000",
            "--out",
            str(folder / "huge.csv"),
            "--workdir",
            str(workdir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not any(folder.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any(folder.iterdir()), "the temporary output never appeared"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143
    assert "Traceback" not in err  # the progress bar's lines, then the one-line message
    assert err.strip().splitlines()[-1] == "neuraleq generate: stopped by SIGTERM"
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_a_gc_callback_is_deferred_to_check_not_printed(signum):
    """A signal that lands in a gc callback (JAX has one) or a ``__del__`` would print a
    traceback there and be dropped: the handler records it for check() instead of raising."""
    import gc
    import sys

    from neuraleq_jax.cli.stopping import StopSignals, Terminated

    expected = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated}[signum]
    stop, raised = StopSignals(), []

    def callback(phase, info):  # the handler as Python would call it, with this frame
        try:
            stop.handler(signum, sys._getframe())
        except BaseException as error:  # what the gc would have swallowed
            raised.append(error)

    gc.callbacks.append(callback)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(callback)
    assert raised == [] and stop.received
    with pytest.raises(expected):
        stop.check()
    with pytest.raises(expected):  # anywhere else it raises at once, as before
        StopSignals().handler(signum, sys._getframe())


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_whose_exception_was_swallowed_still_stops_the_output(signum, tmp_path):
    """Python runs a signal handler between two bytecodes, which may be inside a gc callback
    (JAX has one) or a ``__del__``, where the exception it raises is printed and ignored: the
    recorded signal still stops the streamed output at the next chunk, leaving no file."""
    from neuraleq_jax.cli.stopping import StopSignals, Terminated

    stop = StopSignals()  # not entered: the handler is called as Python would call it
    handled = []

    class HandlerRunsInDel:
        def __del__(self):
            handled.append(signum)
            stop.handler(signum)  # raises; Python swallows it ("Exception ignored in ...")

    def chunks():
        for i in range(4):
            if i == 1:
                HandlerRunsInDel()  # dropped at once, so its __del__ runs here
            yield np.tile(paramspace.flat_setting(), (3, 1))

    expected = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated}[signum]
    out = tmp_path / "x.csv"
    with pytest.raises(expected):
        output.emit(chunks(), 12, LAYOUT, "csv", str(out), str, stop.check)
    assert handled == [signum] and list(tmp_path.iterdir()) == []
    output.emit(chunks(), 12, LAYOUT, "csv", str(out), str, StopSignals().check)
    assert len(out.read_text().splitlines()) == 13  # header + 12 rows: no signal, no stop


def test_a_stop_during_novelty_ranking_ends_the_command(
    workdir, shared_system, monkeypatch, capsys
):
    """``explore --novel`` ranks in compiled pieces and checks for a stop between them: a
    SIGTERM there ends the command (143) before anything is printed."""
    from neuraleq_jax.cli import stopping

    def stopped(self):
        raise stopping.Terminated

    def never(*args):
        raise AssertionError("the output started: the ranking did not check for a stop")

    monkeypatch.setattr(stopping.StopSignals, "check", stopped)
    monkeypatch.setattr(output, "emit", never)
    argv = ["explore", "-n", "300", "--novel", "3", "--workdir", str(workdir)]
    assert cli.main(argv) == 143
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "neuraleq explore: stopped by SIGTERM\n"


def test_an_npz_that_memory_cannot_hold_is_refused_before_exploring(tmp_path, monkeypatch, capsys):
    from neuraleq_jax.cli import generation as generation_command

    monkeypatch.setattr(generation_command, "physical_memory_bytes", lambda: 10**9)
    out = tmp_path / "big.npz"
    # no model in the workdir: the size is checked first, so the size is what is reported
    argv = ["explore", "-n", "100000000", "--out", str(out), "--workdir", str(tmp_path)]
    assert cli.main(argv) == 2
    err = one_line(capsys.readouterr().err)
    assert "a .npz of 100,000,000 settings needs about 12.0 GB of memory" in err
    assert "this machine has 1.0 GB" in err
    assert f"--out {tmp_path / 'big.zarr'}" in err and not out.exists()


def test_a_morph_is_written_a_chunk_at_a_time_and_its_length_is_bounded(
    workdir, shared_system, monkeypatch, capsys
):
    """The CSV's preamp column (a 2048-point response per row) is computed a chunk at a time:
    100k steps took 10 GB of memory in one piece. More steps than one compiled morph should
    hold are refused in one line."""
    from neuraleq_jax.generation import serving

    argv = ["morph", "warm", "bright", "--steps", "40", "--format", "csv"]
    argv += ["--workdir", str(workdir)]
    assert cli.main(argv) == 0
    whole = capsys.readouterr().out
    monkeypatch.setattr(output, "STREAM_CHUNK", 16)  # three chunks
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == whole and len(whole.splitlines()) == 41
    monkeypatch.setattr(serving, "MAX_MORPH_STEPS", 39)
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == (
        "neuraleq morph: steps must be at most 39 (a morph is computed in one piece), got 40\n"
    )


def test_long_labels_keep_their_number():
    labels = [f"0.5 warm + 0.3 bright + 0.2 punchy #{i}" for i in (1, 2, 3)]
    settings = np.tile(paramspace.flat_setting(), (3, 1))
    rows = output.table(settings, labels, LAYOUT).splitlines()[1:]
    shown = [row[: output.LABEL_WIDTH].rstrip() for row in rows]
    assert len(set(shown)) == 3 and [label.split()[-1] for label in shown] == ["#1", "#2", "#3"]
    assert all(row[output.LABEL_WIDTH] == " " for row in rows)  # label and numbers stay apart


@pytest.mark.parametrize(
    "label",
    [
        "warm #1",
        "0.5 warm + 0.3 bright + 0.2 punchy #12",
        "warm→bright 0.25",
        "x" * 40,
        "a very long word list " * 3 + "#7",
    ],
)
def test_short_label_fits_and_keeps_the_last_word(label):
    short = output.short_label(label)
    assert len(short) <= output.LABEL_WIDTH
    if len(label) <= output.LABEL_WIDTH:
        assert short == label
    else:
        tail = label.rsplit(" ", 1)[-1]
        assert "…" in short
        if " " in label:
            assert short.endswith(" " + tail)
        head = short.rsplit(" ", 1)[0] if " " in label else short
        left, right = head.split("…")
        assert label.startswith(left) and label.rsplit(" ", 1)[0].endswith(right)


# ---------------------------------------------------------------- mistakes found before loading


@pytest.fixture
def loads(monkeypatch):
    """The workdirs the model loader was asked for; none should be, for a mistake that the
    command line or the files show."""
    asked = []

    def loader(workdir):
        asked.append(workdir)
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(cli, "_load_system", loader)
    return asked


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["apply", "warm", "in.wav", "exists.wav"],
            "output exists: .*exists.wav; pass --overwrite",
        ),
        (["apply", "warm", "in.wav", "in.wav"], "output path is the input file"),
        (["apply", "warm", "in.wav", "out.xyz"], "unsupported output format '.xyz'"),
        (["apply", "warm", "missing.wav", "out.wav"], "input audio file not found"),
        (["apply", "warm", "noise.wav", "out.wav"], "cannot read .*noise.wav as audio"),
        (["apply", "warm", "in.wav", "nofolder/out.wav"], "output folder does not exist"),
        (["plot", "warm", "--out", "words.jpg"], "must end in .png, got .*words.jpg"),
        (["plot", "--out", "words.png"], "name the words to plot"),
        (["describe", "missing.json"], "preset file .*missing.json does not exist"),
        (["describe", "noise.json"], "preset is not valid JSON"),
        (["morph", "warm", "bright", "--steps", "1"], "--steps must be an integer >= 2"),
        (["generate", "warm", "--centre", "-n", "3"], "--centre gives a word's one centre"),
        (["generate", "warm", "--out", "w.xyz"], "cannot tell the format of --out"),
        (
            ["explore", "-n", "10", "--out", "x.zarr", "--target", "missing.json"],
            "--target file .*missing.json does not exist",
        ),
    ],
)
def test_a_mistake_is_one_line_before_the_model_loads(argv, message, loads, tmp_path, capsys):
    sf.write(tmp_path / "in.wav", np.zeros((480, 1)), 48_000)
    sf.write(tmp_path / "exists.wav", np.zeros((480, 1)), 48_000)
    (tmp_path / "noise.wav").write_bytes(b"not audio at all")
    (tmp_path / "noise.json").write_text("{not json")
    paths = [
        str(tmp_path / a) if a.endswith((".wav", ".xyz", ".jpg", ".png", ".json")) else a
        for a in argv
    ]
    assert cli.main(paths + ["--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert err.startswith(f"neuraleq {argv[0]}: ")
    assert loads == []


# ------------------------------------------------------------------ a full disk


class FullDiskFile:
    """An open file on a full disk: every write raises ENOSPC, as the OS would."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, data):
        import errno

        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._stream.close()


def patched_full_folder(folder: Path, monkeypatch) -> None:
    """Every file opened for writing under ``folder`` refuses its writes (ENOSPC); what the
    library writes from Python (atomic files, streamed outputs, audio through libsndfile's
    virtual I/O, PNGs) meets the full disk."""
    import builtins

    real_open = builtins.open

    def open_on_full_disk(file, mode="r", *args, **kwargs):
        stream = real_open(file, mode, *args, **kwargs)
        under = isinstance(file, (str, os.PathLike)) and folder in Path(file).resolve().parents
        return FullDiskFile(stream) if under and set(mode) & set("wax+") else stream

    monkeypatch.setattr(builtins, "open", open_on_full_disk)


@pytest.fixture(scope="module")
def small_tmpfs(tmp_path_factory):
    """A 64 KiB tmpfs (root may mount one; skipped where mounting is not permitted)."""
    folder = tmp_path_factory.mktemp("tmpfs")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip() or 'not root'}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; returns the filler file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as stream:
        try:
            while True:
                stream.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == 28  # ENOSPC
    return filler


W = "--workdir {workdir}"
WRITING_COMMANDS = {  # command → (its command line, the file it writes under OUT)
    "apply": (f"apply {{preset}} {{audio}} {{out}}/o.wav {W}", "o.wav"),
    "generate": (f"generate warm -n 3 --out {{out}}/g.json {W}", "g.json"),
    "morph": (f"morph warm bright --steps 4 --out {{out}}/m.csv {W}", "m.csv"),
    "convert": ("convert {preset} {out}/c.txt", "c.txt"),
    "explore npz": (f"explore -n 100 --out {{out}}/x.npz {W}", "x.npz"),
    "explore zarr": (f"explore -n 100 --out {{out}}/e.zarr {W}", "e.zarr"),
    "plot": (f"plot warm --out {{out}}/p.png {W}", "p.png"),
    "evaluate": (
        f"evaluate --baseline-only --no-plots --n-variations 4 --steps 5 --out {{out}}/ev {W}",
        "ev/metrics.json",
    ),
}


@pytest.mark.parametrize("disk", ["patched", "tmpfs"])
@pytest.mark.parametrize("command", list(WRITING_COMMANDS))
def test_a_full_disk_is_one_line_naming_the_file_with_exit_1(
    command, disk, workdir, shared_system, tmp_path, monkeypatch, request, capsys
):
    """Every command that writes says ``no space left on PATH`` with exit 1 (a file operation
    failed, docs/cli.md) and leaves no file behind: through a patched write everywhere, and
    through a real full file system where a tmpfs can be mounted."""
    sources = {"preset": tmp_path / "boost.json", "audio": tmp_path / "in.wav"}
    presets.write_preset(sources["preset"], boost_setting(6.0)[None], names=["boost"])
    sf.write(sources["audio"], np.zeros((4_800, 2)), 48_000, subtype="PCM_16")
    if disk == "patched":
        out = tmp_path / "full"
        out.mkdir()
        patched_full_folder(out.resolve(), monkeypatch)
        kept = set()
    else:
        out = request.getfixturevalue("small_tmpfs")
        kept = {fill(out)}
    arguments, written = WRITING_COMMANDS[command]
    argv = [a.format(out=out, workdir=workdir, **sources) for a in arguments.split()]
    try:
        assert cli.main(argv) == 1
        line = one_line(capsys.readouterr().err)
        assert line.startswith(f"neuraleq {argv[0]}: no space left on {out / written}"), line
        assert [p for p in out.rglob("*") if p.is_file() and p not in kept] == []
    finally:
        for path in sorted(out.iterdir()):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def test_a_reader_that_goes_away_ends_the_command_quietly(workdir):
    """``neuraleq generate warm -n 20000 | head -1``: the pipe closed early ends the command
    with 141 (128 + SIGPIPE, as Unix tools do) and nothing on stderr, no "[Errno 32]"."""
    command = [sys.executable, "-m", "neuraleq_jax.cli", "generate", "warm", "-n", "20000"]
    process = subprocess.Popen(
        [*command, "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().startswith("setting")  # the table's head
        process.stdout.close()  # as head does once it has its line
        err = process.stderr.read()
        process.wait(timeout=120)
    finally:
        process.kill()
    assert process.returncode == cli.BROKEN_PIPE == 141
    assert err == ""


def test_evaluate_errors_carry_the_command_prefix_and_option_names(tmp_path, monkeypatch, capsys):
    """``neuraleq evaluate`` fails like every other command: ``neuraleq evaluate: ...`` and
    the command line's option (``--out DIR``), never a Python name (``out_dir=``)."""
    assert cli.main(["evaluate", "--workdir", str(tmp_path / "absent"), "--baseline-only"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("neuraleq evaluate: no config.json in ")
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setattr("neuraleq_jax.training.workdir.os.access", lambda *args: False)
    assert cli.main(["evaluate", "--workdir", str(tmp_path), "--baseline-only"]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("neuraleq evaluate: cannot write the evaluation (metrics.json")
    assert f"{tmp_path} is not writable" in line
    assert "--out DIR" in line and "out_dir" not in line
