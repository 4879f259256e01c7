"""Exploring into a Zarr store: contents, top-k selections, resume after SIGKILL, two processes."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from tolerances import RESPONSE_DB_TOL

from neuraleq_jax import cli, generation, presets
from neuraleq_jax.explore import store as explore_store
from neuraleq_jax.explore import writer
from neuraleq_jax.model import paramspace, response
from neuraleq_jax.training import checkpoints

LAYOUT = paramspace.DEFAULT_LAYOUT
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workdir(tiny_workdir):
    return tiny_workdir  # explorations are written beside each test, never into the workdir


@pytest.fixture(scope="module")
def model(workdir):
    bundle = checkpoints.load_bundle(workdir)
    return bundle.params, bundle.model_config, bundle.word_model


def store_files(path: Path) -> dict[str, bytes]:
    return {
        p.relative_to(path).as_posix(): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def test_store_equals_in_memory_explore_and_reads_lazily(model, tmp_path):
    params, config, word_model = model
    key, n, chunk = jax.random.key(11), 2_500, 1_024  # three chunks, the last one partial
    report = writer.explore_to_store(
        tmp_path / "x.zarr", params, config, word_model, key, n, chunk=chunk, columns=("latents",)
    )
    expected = generation.explore(params, config, word_model, key, n, chunk=chunk)
    store = explore_store.open_store(tmp_path / "x.zarr")
    assert store.complete and not report.already_complete and report.rows_written == n
    assert store.settings.shape == (n, 15) and store.settings.dtype == np.float32
    np.testing.assert_array_equal(store.settings[:], expected)
    np.testing.assert_array_equal(store.settings[1_000:1_100], expected[1_000:1_100])
    attributes = store.attributes
    assert (attributes["n"], attributes["chunk"], attributes["format_version"]) == (
        n,
        chunk,
        explore_store.FORMAT_VERSION,
    )
    assert attributes["model_digest"] == writer.model_digest(params, config, word_model)
    # the latents decode to the stored settings (float32 decoder round-off, in unit space)
    decoded = generation.decode_latents(params, config, store["latents"][:])
    np.testing.assert_allclose(
        paramspace.normalize(np.asarray(decoded), LAYOUT),
        paramspace.normalize(expected, LAYOUT),
        atol=1e-4,
    )
    # any Zarr v3 reader sees a group with plain arrays
    group = json.loads((tmp_path / "x.zarr" / "zarr.json").read_text())
    assert group["zarr_format"] == 3 and group["node_type"] == "group"


def test_a_stop_between_chunks_leaves_a_store_that_resumes_to_the_same_rows(model, tmp_path):
    """``check_stop`` (the CLI's Ctrl-C/SIGTERM check) raising before the second chunk stops
    the run with one chunk done; a rerun writes the rest, equal to the in-memory explore."""
    params, config, word_model = model
    key, n, chunk, calls = jax.random.key(11), 2_500, 1_024, []

    def stop_at_second_chunk():
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    path = tmp_path / "x.zarr"
    with pytest.raises(KeyboardInterrupt):
        writer.explore_to_store(
            path, params, config, word_model, key, n, chunk=chunk, check_stop=stop_at_second_chunk
        )
    done = explore_store.open_array(path, "progress/chunk_done").read().result()
    assert done.tolist() == [1, 0, 0]
    report = writer.explore_to_store(path, params, config, word_model, key, n, chunk=chunk)
    assert (report.chunks_before, report.rows_written) == (1, n - chunk)
    expected = generation.explore(params, config, word_model, key, n, chunk=chunk)
    np.testing.assert_array_equal(explore_store.open_store(path).settings[:], expected)


def test_cli_store_equals_the_facade_and_a_finished_store_is_not_rewritten(
    workdir, tiny_system, tmp_path, capsys
):
    out = tmp_path / "cli.zarr"
    args = ["explore", "-n", "3000", "--seed", "5", "--out", str(out), "--workdir", str(workdir)]
    assert cli.main(args) == 0
    expected = tiny_system.explore_latent_space(3000, seed=5, as_array=True)  # workdir's model
    np.testing.assert_array_equal(explore_store.open_store(out).settings[:], expected)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    capsys.readouterr()
    assert cli.main(args) == 0
    assert "complete already" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_top_k_and_columns_equal_brute_force(model, tmp_path):
    params, config, word_model = model
    key, n, chunk, k = jax.random.key(3), 3_000, 512, 6
    setting = np.array(
        [[3, 120, 0.7, -4, 400, 1, 5, 1500, 2, 2, 5000, 1, -3, 9000, 0.7]], np.float32
    )
    presets.write_preset(tmp_path / "target.json", setting)
    from neuraleq_jax.cli.explore import read_target

    target = read_target(tmp_path / "target.json", LAYOUT)
    writer.explore_to_store(
        tmp_path / "k.zarr",
        params,
        config,
        word_model,
        key,
        n,
        chunk=chunk,
        columns=("novelty", "nearest_word"),
        novel_k=k,
        target=target,
        target_k=k,
    )
    store = explore_store.open_store(tmp_path / "k.zarr")
    settings = generation.explore(params, config, word_model, key, n, chunk=chunk)
    rows = np.arange(n)

    # novelty: RMS dB to the nearest training response, brute force in float64
    responses = np.asarray(response.magnitude_response_db(settings, layout=LAYOUT), np.float64)
    references = np.asarray(word_model["reference_responses_RxF"], np.float64)
    novelty = np.sqrt(((responses[:, None, :] - references[None]) ** 2).mean(-1)).min(-1)
    np.testing.assert_allclose(store["novelty_db"][:], novelty, atol=RESPONSE_DB_TOL)
    best = np.lexsort((rows, -novelty))[:k]
    np.testing.assert_array_equal(store["top_novel/rows"][:], best)
    np.testing.assert_allclose(
        store["top_novel/novelty_db"][:], novelty[best], atol=RESPONSE_DB_TOL
    )
    np.testing.assert_array_equal(store["top_novel/settings"][:], settings[best])

    # nearest to the target response: the preset's response on the reference grid
    target_db = np.asarray(response.magnitude_response_db(setting[0], layout=LAYOUT), np.float64)
    distance = np.sqrt(((responses - target_db) ** 2).mean(-1))
    nearest = np.lexsort((rows, distance))[:k]
    np.testing.assert_array_equal(store["top_target/rows"][:], nearest)
    np.testing.assert_allclose(
        store["top_target/distance_db"][:], distance[nearest], atol=RESPONSE_DB_TOL
    )

    # nearest word: argmin over the word centres' responses, where the choice is clear
    centres = np.asarray(word_model["centre_responses_WxF"], np.float64)
    to_words = np.sqrt(((responses[:, None, :] - centres[None]) ** 2).mean(-1))
    ordered = np.sort(to_words, axis=-1)
    clear = ordered[:, 1] - ordered[:, 0] > RESPONSE_DB_TOL
    np.testing.assert_array_equal(store["nearest_word"][:][clear], to_words.argmin(-1)[clear])
    np.testing.assert_allclose(store["nearest_word_db"][:], ordered[:, 0], atol=RESPONSE_DB_TOL)


def test_cli_target_curve_keeps_the_nearest_settings(workdir, model, tmp_path, capsys):
    from neuraleq_jax.data import curves

    params, config, word_model = model
    gains_F = np.linspace(-4.0, 6.0, curves.N_BANDS)  # a tilt towards the highs
    document = curves.curve_document(["tilt"], gains_F[None])
    (tmp_path / "tilt.json").write_text(json.dumps(document))
    out = tmp_path / "near.zarr"
    assert (
        cli.main(
            [
                "explore",
                "-n",
                "1500",
                "--chunk",
                "512",
                "--seed",
                "4",
                "--target",
                str(tmp_path / "tilt.json"),
                "--near",
                "3",
                "--out",
                str(out),
                "--workdir",
                str(workdir),
            ]
        )
        == 0
    )
    store = explore_store.open_store(out)
    settings = generation.explore(
        params, config, word_model, writer.key_for_seed(4), 1500, chunk=512
    )
    responses = np.asarray(
        response.magnitude_response_db(settings, curves.CURVE_FREQS, layout=LAYOUT), np.float64
    )
    distance = np.sqrt(((responses - gains_F) ** 2).mean(-1))
    nearest = np.lexsort((np.arange(1500), distance))[:3]
    np.testing.assert_array_equal(store["top_target/rows"][:], nearest)
    np.testing.assert_allclose(
        store["top_target/distance_db"][:], distance[nearest], atol=RESPONSE_DB_TOL
    )
    np.testing.assert_allclose(store.attributes["target"]["freqs_hz"], curves.CURVE_FREQS)
    (tmp_path / "bad.json").write_text('{"what": 1}')
    capsys.readouterr()
    assert (
        cli.main(
            [
                "explore",
                "-n",
                "10",
                "--target",
                str(tmp_path / "bad.json"),
                "--out",
                str(tmp_path / "bad.zarr"),
                "--workdir",
                str(workdir),
            ]
        )
        == 2
    )
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "neither a preset" in error
    assert not (tmp_path / "bad.zarr").exists()


def test_merge_top_is_independent_of_grouping():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 40).astype(np.float32)  # many ties: broken by the lower row
    rows = rng.permutation(40)
    whole = writer.merge_top(rows, scores, 7, largest=True)
    parts = [
        writer.merge_top(rows[i : i + 9], scores[i : i + 9], 7, largest=True)
        for i in range(0, 40, 9)
    ]
    merged = writer.merge_top(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        7,
        largest=True,
    )
    expected = sorted(zip(-scores, rows))[:7]
    np.testing.assert_array_equal(whole[0], [r for _, r in expected])
    np.testing.assert_array_equal(merged[0], whole[0])


def test_foreign_store_and_foreign_folder_are_refused(model, workdir, tmp_path, capsys):
    params, config, word_model = model
    out = tmp_path / "mine.zarr"
    writer.explore_to_store(out, params, config, word_model, jax.random.key(1), 1_000, chunk=256)
    before = store_files(out)
    with pytest.raises(ValueError, match="key/seed"):
        writer.explore_to_store(
            out, params, config, word_model, jax.random.key(2), 1_000, chunk=256
        )
    other = jax.tree.map(lambda x: np.asarray(x) * 1.01, params)
    with pytest.raises(ValueError, match=r"another exploration \(model "):
        writer.explore_to_store(out, other, config, word_model, jax.random.key(1), 1_000, chunk=256)
    capsys.readouterr()
    assert cli.main(["explore", "-n", "999", "--out", str(out), "--workdir", str(workdir)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "another exploration" in error and "n 1000" in error
    assert store_files(out) == before
    (tmp_path / "notes.zarr").mkdir()
    (tmp_path / "notes.zarr" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an exploration store"):
        writer.explore_to_store(
            tmp_path / "notes.zarr", params, config, word_model, jax.random.key(1), 100
        )
    assert (tmp_path / "notes.zarr" / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_bytes_of_an_uninterrupted_run(workdir, tmp_path, capsys):
    n, chunk = 300_000, 4_096  # 74 chunks; scoring novelty keeps each chunk measurable
    common = [
        "-n",
        str(n),
        "--chunk",
        str(chunk),
        "--columns",
        "novelty",
        "--novel",
        "5",
        "--workdir",
        str(workdir),
    ]
    killed = tmp_path / "killed.zarr"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen(
        [sys.executable, "-m", "neuraleq_jax.cli", "explore", *common, "--out", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    markers = killed / "progress" / "chunk_done" / "c"

    def done_chunks() -> int:  # TensorStore writes "<key>.__lock", then renames it to "<key>"
        return (
            sum(not p.name.endswith(".__lock") for p in markers.iterdir())
            if markers.is_dir()
            else 0
        )

    deadline = time.monotonic() + 240
    while child.poll() is None and time.monotonic() < deadline and not done_chunks():
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert 0 < done_chunks() < 74 and not explore_store.read_attributes(killed)["complete"]

    # the rerun and the uninterrupted reference need no process of their own
    capsys.readouterr()
    assert cli.main(["explore", *common, "--out", str(killed)]) == 0
    assert "resumed after" in capsys.readouterr().out
    assert cli.main(["explore", *common, "--out", str(tmp_path / "whole.zarr")]) == 0
    assert store_files(killed) == store_files(tmp_path / "whole.zarr")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_write_the_store_of_one_process(workdir, tmp_path):
    common = [
        "explore",
        "-n",
        "20000",
        "--chunk",
        "2048",
        "--columns",
        "nearest_word",
        "--novel",
        "4",
        "--seed",
        "2",
        "--workdir",
        str(workdir),
    ]
    address = f"127.0.0.1:{_free_port()}"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    shared = tmp_path / "two.zarr"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "neuraleq_jax.cli",
                *common,
                "--out",
                str(shared),
                f"--distributed.coordinator_address={address}",
                "--distributed.num_processes=2",
                f"--distributed.process_id={i}",
                "--distributed.local_devices=4",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    try:
        logs = [p.communicate(timeout=240)[0].decode(errors="replace") for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)[-3000:]
    # the one-process reference runs in this process (explore on CPU uses one device)
    assert cli.main([*common, "--out", str(tmp_path / "one.zarr")]) == 0
    assert store_files(shared) == store_files(tmp_path / "one.zarr")


def test_a_store_without_a_finished_chunk_gives_way_to_another_run(model, tmp_path, capsys):
    """A run stopped (or out of disk) before its first chunk leaves a store that holds nothing
    finished: another run at that path replaces it; one with a foreign file is refused with
    the command that removes it."""
    params, config, word_model = model
    path = tmp_path / "x.zarr"

    def stop_at_once():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        writer.explore_to_store(
            path, params, config, word_model, jax.random.key(1), 5_000, check_stop=stop_at_once
        )
    assert explore_store.read_attributes(path)["n"] == 5_000
    report = writer.explore_to_store(path, params, config, word_model, jax.random.key(2), 300)
    assert report.replaced and report.store.complete
    expected = generation.explore(params, config, word_model, jax.random.key(2), 300)
    np.testing.assert_array_equal(explore_store.open_store(path).settings[:], expected)
    with pytest.raises(KeyboardInterrupt):  # an unfinished store that also holds a user's file
        writer.explore_to_store(
            tmp_path / "y.zarr", params, config, word_model, jax.random.key(1), 99,
            check_stop=stop_at_once,
        )  # fmt: skip
    (tmp_path / "y.zarr" / "mine.txt").write_text("keep")
    with pytest.raises(ValueError, match=r"another exploration .*rm -r .*y\.zarr"):
        writer.explore_to_store(
            tmp_path / "y.zarr", params, config, word_model, jax.random.key(1), 98
        )
    assert (tmp_path / "y.zarr" / "mine.txt").read_text() == "keep"


def test_a_full_tmpfs_then_a_smaller_run_at_the_same_path(workdir, tmp_path, capsys):
    """A real full disk (a 64 KiB tmpfs): the big run fails in one line with exit 1 and the
    smaller rerun at the same --out replaces what it left."""
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        out = folder / "e.zarr"
        big = ["explore", "-n", "200000", "--out", str(out), "--workdir", str(workdir)]
        assert cli.main(big) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines[-1].startswith(f"neuraleq explore: no space left on {out}")
        assert "RESOURCE_EXHAUSTED" not in "".join(lines)
        assert cli.main([*big[:2], "100", *big[3:]]) == 0
        assert "replaced the unfinished exploration" in capsys.readouterr().err
        assert explore_store.open_store(out).settings.shape == (100, 15)
    finally:
        subprocess.run(["umount", str(folder)], check=True)
