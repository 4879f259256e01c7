"""Training runs under real faults: a second run on a busy workdir, a holder killed with the lock,
a metrics line cut off mid-write, a bad start, Ctrl-C / SIGTERM sent to a real child process,
a read-only workdir; and the command's help and one-line errors.

The subprocess tests run ``python -m neuraleq_jax.train`` as a user would, with the persistent
compilation cache of the environment (a repeated tiny run compiles nothing).
"""

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from neuraleq_jax import config
from neuraleq_jax.cli import train
from neuraleq_jax.training import checkpoints, experiment

REPO = Path(__file__).resolve().parents[2]
TINY_ARGS = [
    "--model.encoder_widths=8",
    "--model.decoder_widths=8",
    "--model.latent_dim=4",
    "--model.semantic_dim=0",
    "--model.embedding_dim=8",
    "--model.mlp_width=8",
    "--train.checkpoint_every=1",
    "--train.response_weight=0",
    "--train.cluster_weight=0",
    "--train.devices=1",
    "--data.per_word=6",
    "--quiet",
]
# a run long enough (a few ms per epoch) to be signalled mid-way; only its last epoch is
# checkpointed on schedule, so an interrupted run keeps its epochs only by the signal's checkpoint
LONG_EPOCHS = 600
LONG_ARGS = [
    *TINY_ARGS,
    f"--train.epochs={LONG_EPOCHS}",
    "--train.checkpoint_every=1000",
    "--data.per_word=14",
]
# a holder that runs until it is stopped
ENDLESS_ARGS = [*TINY_ARGS, "--train.epochs=100000", "--train.checkpoint_every=100000"]


def train_command(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "neuraleq_jax.train", "--workdir", str(workdir), *args]


def start(command: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def finish(command: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=timeout, **kwargs
    )


def wait_for_epochs(metrics: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    """Return as soon as ``metrics`` holds a complete line (the run is inside its epoch loop)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.is_file() and "\n" in metrics.read_text():
            return
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(
                f"the run ended (exit {process.returncode}) before its first epoch:\n{out}\n{err}"
            )
        time.sleep(0.005)
    process.kill()
    pytest.fail("no epoch finished in time")


def wait_for_lock(workdir: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    """Return once ``process`` has written itself into the workdir's lock file."""
    lock = workdir / ".lock"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock.is_file() and f'"pid": {process.pid},' in lock.read_text():
            return
        if process.poll() is not None:
            pytest.fail(
                f"the run ended (exit {process.returncode}) without taking the lock: "
                f"{process.communicate()}"
            )
        time.sleep(0.01)
    process.kill()
    pytest.fail("the run did not take the lock in time")


def epochs_in(metrics: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()]


def records_without_timing(metrics: Path) -> list[dict]:
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in records]


@pytest.fixture
def in_process(monkeypatch):
    """train.main in this process without switching on the persistent cache for the session."""
    monkeypatch.setenv("NEURALEQ_JAX_CACHE_DIR", "off")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """A finished run of LONG_ARGS, never interrupted: the reference for resumed runs."""
    workdir = tmp_path_factory.mktemp("uninterrupted") / "run"
    done = finish(train_command(workdir, *LONG_ARGS))
    assert done.returncode == 0, done.stderr
    return workdir


# ------------------------------------------------------------------ signals


@pytest.mark.slow
def test_ctrl_c_checkpoints_the_running_epoch_and_resuming_is_bit_identical(
    uninterrupted, tmp_path
):
    """SIGINT (SIGTERM takes the same path: see the busy-workdir test)."""
    sig = signal.SIGINT
    workdir = tmp_path / "run"
    child = start(train_command(workdir, *LONG_ARGS))
    wait_for_epochs(workdir / "metrics.jsonl", child)
    child.send_signal(sig)
    _, err = child.communicate(timeout=300)
    assert child.returncode == 128 + sig, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    stopped = re.findall(
        r"^stopped at epoch (\d+); rerun the same command to resume$", err, flags=re.M
    )
    assert len(stopped) == 1, err
    epoch = int(stopped[0])
    assert 1 <= epoch < LONG_EPOCHS, f"the signal came after the last epoch ({err})"
    # every finished epoch is logged once and checkpointed, though none was due on schedule
    assert epochs_in(workdir / "metrics.jsonl") == list(range(1, epoch + 1))
    assert checkpoints.TrainingCheckpoints(workdir).all_epochs() == [epoch]
    assert not (workdir / "bundle").exists()
    assert (workdir / ".lock").read_text() == ""  # released on the way out

    resumed = finish(train_command(workdir, *LONG_ARGS))
    assert resumed.returncode == 0, resumed.stderr
    assert records_without_timing(workdir / "metrics.jsonl") == records_without_timing(
        uninterrupted / "metrics.jsonl"
    )
    a, b = checkpoints.load_bundle(uninterrupted), checkpoints.load_bundle(workdir)
    assert a.step == b.step
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_signal_handlers_are_restored_after_the_run():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with experiment.stop_on_signals() as received:
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
        os.kill(os.getpid(), signal.SIGTERM)  # the first signal is only recorded
        assert received == [signal.SIGTERM]
        with pytest.raises(train.StopNow):  # a second one stops at once
            os.kill(os.getpid(), signal.SIGINT)
    assert {s: signal.getsignal(s) for s in before} == before


# ------------------------------------------------------------------ the workdir lock


@pytest.mark.slow
def test_a_second_run_on_a_busy_workdir_refuses_in_one_line(tmp_path):
    workdir = tmp_path / "run"
    first, second = start(train_command(workdir, *ENDLESS_ARGS)), None
    try:
        wait_for_lock(workdir, first)
        second = start(train_command(workdir, *ENDLESS_ARGS))  # boots while the first compiles
        wait_for_epochs(workdir / "metrics.jsonl", first)
        _, second_err = second.communicate(timeout=120)
    finally:
        first.send_signal(signal.SIGTERM)  # the signal a cluster sends before preempting
        _, first_err = first.communicate(timeout=300)
        if second is not None and second.poll() is None:
            second.kill()
            second.communicate()
    assert second.returncode == 1
    lines = second_err.strip().splitlines()
    assert len(lines) == 1, second_err
    assert f"pid {first.pid} on host {socket.gethostname()}" in lines[0]
    assert "in use by another training run" in lines[0]
    assert first.returncode == 128 + signal.SIGTERM, first_err
    assert "Traceback" not in first_err
    epoch = int(
        re.search(
            r"^stopped at epoch (\d+); rerun the same command to resume$", first_err, flags=re.M
        )[1]
    )
    assert epochs_in(workdir / "metrics.jsonl") == list(range(1, epoch + 1))  # once each
    assert checkpoints.TrainingCheckpoints(workdir).all_epochs() == [epoch]


@pytest.mark.slow
def test_a_lock_left_by_a_killed_holder_is_taken_over_with_a_note(tmp_path, in_process, capsys):
    workdir = tmp_path / "run"
    workdir.mkdir()
    # the lock module alone (standard library only), so the holder starts without jax
    holder = start(
        [
            sys.executable,
            "-c",
            "import importlib.util, sys, time\n"
            "spec = importlib.util.spec_from_file_location('lock', sys.argv[2])\n"
            "lock = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(lock)\n"
            "lock.WorkdirLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\n"
            "time.sleep(600)\n",
            str(workdir),
            str(REPO / "neuraleq_jax" / "training" / "workdir.py"),
        ]
    )
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.communicate(timeout=60)
    assert json.loads((workdir / ".lock").read_text())["pid"] == holder.pid

    args = ["--workdir", str(workdir), *TINY_ARGS, "--train.epochs=3", "--stop_after_epoch=1"]
    assert train.main(args) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1
    assert f"{workdir / '.lock'} was left by pid {holder.pid} on host" in notes[0]
    assert "taking it over" in notes[0]
    assert (workdir / ".lock").read_text() == ""


# ------------------------------------------------------------------ metrics log


def test_a_cut_off_last_metrics_line_is_dropped_with_a_note_and_the_run_resumes(
    tmp_path, in_process, capsys
):
    workdir, metrics = tmp_path / "run", tmp_path / "run" / "metrics.jsonl"
    args = ["--workdir", str(workdir), *TINY_ARGS, "--train.epochs=3"]
    assert train.main([*args, "--stop_after_epoch=1"]) == 0
    lines = metrics.read_text()
    metrics.write_text(lines + lines.splitlines()[-1][:30])  # a crash mid-append of epoch 2
    capsys.readouterr()
    assert train.main([*args, "--stop_after_epoch=2"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"note: {metrics}: dropped its last line")
    assert epochs_in(metrics) == [1, 2]


def test_a_damaged_metrics_line_before_the_last_is_named(tmp_path, in_process, capsys):
    workdir, metrics = tmp_path / "run", tmp_path / "run" / "metrics.jsonl"
    args = ["--workdir", str(workdir), *TINY_ARGS, "--train.epochs=3"]
    assert train.main([*args, "--stop_after_epoch=2"]) == 0
    first, second = metrics.read_text().splitlines()
    metrics.write_text(first[:-5] + "\n" + second + "\n")
    capsys.readouterr()
    assert train.main([*args, "--stop_after_epoch=2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {metrics}, line 1, is damaged")


# ------------------------------------------------------------------ checks before writing


@pytest.mark.parametrize(
    "bad, message",
    [
        ("--train.batch_size=1000", "fewer than one batch (batch_size 1000)"),
        ("--train.devices=64", "asks for 64 devices but only 8 are available"),
        ("--train.batch_size=12", "batch_size 12 is not divisible by the 8 devices"),
    ],
)
def test_a_failed_start_writes_nothing_so_the_corrected_command_runs(
    bad, message, tmp_path, in_process, capsys
):
    workdir = tmp_path / "run"
    args = ["--workdir", str(workdir), *TINY_ARGS, "--train.epochs=3", "--stop_after_epoch=1"]
    extra = ["--train.devices=0"] if "divisible" in message else []
    assert train.main([*args, *extra, bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not workdir.exists()
    assert train.main(args) == 0
    assert config.load_json(workdir / "config.json").train.batch_size == 16


# ------------------------------------------------------------------ read-only folders


def _set_read_only(folder: Path, read_only: bool) -> None:
    """Make ``folder`` and everything in it read-only (or writable again). Root ignores
    permission bits, so as root the immutable attribute is used: it binds root too."""
    if os.geteuid() == 0:
        flag = "+i" if read_only else "-i"
        subprocess.run(["chattr", "-R", flag, str(folder)], check=True, capture_output=True)
        return
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        write = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
        path.chmod(mode & ~write if read_only else mode | stat.S_IWUSR)


@pytest.fixture
def read_only_copy(uninterrupted, tmp_path):
    """``(workdir, out)``: a read-only copy of the finished run, and a writable folder."""
    workdir, out = tmp_path / "run", tmp_path / "out"
    shutil.copytree(uninterrupted, workdir)
    try:
        _set_read_only(workdir, True)
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(
            f"cannot make a folder read-only here (as root that needs chattr +i, "
            f"which failed: {error})"
        )
    try:
        if os.access(workdir, os.W_OK):
            pytest.skip("folders stay writable for this user on this file system")
        yield workdir, out
    finally:
        _set_read_only(workdir, False)


def test_train_on_a_finished_read_only_run_says_so_in_one_line(read_only_copy, in_process, capsys):
    workdir, _ = read_only_copy
    before = sorted(p.relative_to(workdir) for p in workdir.rglob("*"))
    assert train.main(["--workdir", str(workdir), *LONG_ARGS]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"{workdir} is not writable" in lines[0] and "The run there is finished" in lines[0]
    assert sorted(p.relative_to(workdir) for p in workdir.rglob("*")) == before


@pytest.mark.slow
def test_evaluate_checks_its_output_folder_first_and_writes_to_out(read_only_copy, capsys):
    from neuraleq_jax.cli import evaluate

    workdir, out = read_only_copy
    args = [
        "--workdir",
        str(workdir),
        "--baseline-only",
        "--no-plots",
        "--n-variations",
        "4",
        "--steps",
        "5",
    ]
    assert evaluate.main(args) == 1
    refused = capsys.readouterr()
    assert refused.out == ""  # refused before any figure was computed
    lines = refused.err.strip().splitlines()
    assert len(lines) == 1 and f"{workdir} is not writable" in lines[0] and "--out DIR" in lines[0]
    assert evaluate.main([*args, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["setup"]["workdir"] == str(workdir) and metrics["baseline"] is not None


# ------------------------------------------------------------------ help and errors


def test_help_lists_every_config_field_with_its_value(capsys):
    assert train.main(["--help"]) == 0
    printed = capsys.readouterr().out
    assert printed == train.format_help("synthetic")
    preset = config.load_preset("synthetic")
    for section in config.SECTIONS:
        part = getattr(preset, section)
        for field in dataclasses.fields(part):
            value = getattr(part, field.name)
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
            assert f"  --{section}.{field.name}={shown}\n" in printed, field.name
    for option in ("--workdir", "--config", "--debug", "--stop_after_epoch"):
        assert option in printed
    assert "  --model.encoder=transformer\n" in train.format_help("transformer")


def test_errors_are_one_line_and_debug_adds_the_traceback(tmp_path, in_process, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert train.main(["--workdir", str(a_file), *TINY_ARGS]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"error: --workdir {a_file} is a file; give a folder (new or a training workdir)\n"
    )
    assert train.main(["--workdir", str(a_file), "--debug", *TINY_ARGS]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.endswith(
        f"error: --workdir {a_file} is a file; give a folder (new or a training workdir)\n"
    )
    assert train.main([*TINY_ARGS]) == 2  # no --workdir
    assert capsys.readouterr().err.count("\n") == 1
