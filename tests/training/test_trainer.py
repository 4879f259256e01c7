"""Training: sharded = unsharded, multi-process = one process, resume = uninterrupted, NaN stops."""

import dataclasses
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neuraleq_jax.config import TrainConfig
from neuraleq_jax.data.dataset import stratified_split
from neuraleq_jax.data.synthetic import make_synthetic
from neuraleq_jax.model import networks, paramspace
from neuraleq_jax.training import steps, trainer

TINY = networks.ModelConfig(
    encoder_widths=(16,),
    decoder_widths=(16,),
    latent_dim=4,
    embedding_dim=8,
    mlp_width=8,
    dropout=0.1,
)
# the response and silhouette terms are left out where not under test: they triple compile time
TINY_TRAIN = TrainConfig(
    epochs=4,
    batch_size=16,
    seed=3,
    checkpoint_every=2,
    keep_checkpoints=2,
    response_weight=0.0,
    cluster_weight=0.0,
)


@pytest.fixture(scope="module")
def splits():
    train, val = stratified_split(make_synthetic(per_word=8, seed=1), (0.75, 0.25), 0)
    return train, val


def leaves(tree):
    return [np.asarray(jax.device_get(x)) for x in jax.tree.leaves(tree)]


def assert_trees_close(a, b, atol):
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0)


def test_sharded_step_equals_unsharded_step(splits):
    assert jax.device_count() == 8
    train, _ = splits
    # the silhouette term couples every row of the batch, so it is the one to check under sharding
    tc = dataclasses.replace(TINY_TRAIN, cluster_weight=1.0)
    x, y = train.normalized()[:16], train.word_ids[:16].astype(np.int32)
    results = []
    for mesh in (trainer.make_mesh(1), trainer.make_mesh(8)):
        programs = trainer.compile_programs(TINY, tc, train.layout, steps_per_epoch=1, mesh=mesh)
        state = programs.init()
        new_state, metrics = programs.step(
            state, programs.put(x, "batch"), programs.put(y, "batch")
        )
        results.append((new_state, metrics))
    (single, m1), (sharded, m8) = results
    assert len(sharded.params["decoder"]["gain_head"]["kernel"].sharding.device_set) == 8
    assert abs(float(m1["loss"]) - float(m8["loss"])) < 1e-5
    assert_trees_close(single.params, sharded.params, atol=1e-5)
    assert_trees_close(single.opt_state, sharded.opt_state, atol=1e-5)


def test_batch_not_divisible_by_devices_is_a_clear_error(splits):
    train, _ = splits
    tc = dataclasses.replace(TINY_TRAIN, batch_size=12, devices=8)
    with pytest.raises(ValueError, match="not divisible by the 8 devices"):
        trainer.fit(train, TINY, tc)


def test_fit_logs_metrics_and_learns(splits, tmp_path):
    train, val = splits
    tc = dataclasses.replace(TINY_TRAIN, epochs=6, devices=2, learning_rate=3e-3)
    result = trainer.fit(train, TINY, tc, val_ds=val, workdir=tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert (
        [line["epoch"] for line in lines]
        == list(range(1, 7))
        == [h["epoch"] for h in result.history]
    )
    for key in (
        "train_loss",
        "train_recon",
        "train_contrastive",
        "train_response",
        "train_cluster",
        "val_loss",
        "val_silhouette",
        "val_response_db",
    ):
        assert all(np.isfinite(line[key]) for line in lines), key
    assert lines[-1]["train_recon"] < lines[0]["train_recon"]
    assert int(result.state.step) == 6 * (len(train) // 16)
    assert result.timings["compile_s"] > 0 and result.timings["epochs_run"] == 6


@pytest.mark.parametrize(
    "n, chunk", [(1, 4096), (4096, 4096), (4097, 4096), (60_000, 4096), (16, 5)]
)
def test_eval_slices_cover_the_set_in_near_equal_chunks(n, chunk):
    slices = trainer.eval_slices(n, chunk)
    sizes = [s.stop - s.start for s in slices]
    assert slices[0].start == 0 and slices[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(slices, slices[1:]))
    assert max(sizes) <= chunk and max(sizes) - min(sizes) <= 1
    assert len(slices) == -(-n // chunk)


def test_validation_in_chunks_equals_one_chunk_where_the_terms_are_per_setting(splits, monkeypatch):
    """Sets larger than EVAL_CHUNK are evaluated in chunks (the pairwise terms need memory
    ∝ rows²): per-setting figures and latents are what one whole-set call gives, training is
    untouched, and only the pairwise terms become means over chunks."""
    train, val = splits
    tc = dataclasses.replace(TINY_TRAIN, epochs=2, devices=1)
    whole = trainer.fit(train, TINY, tc, val_ds=val)
    monkeypatch.setattr(trainer, "EVAL_CHUNK", 7)  # 16 validation settings: chunks of 5-6
    chunked = trainer.fit(train, TINY, tc, val_ds=val)
    assert_trees_close(whole.params, chunked.params, atol=0)
    for a, b in zip(whole.history, chunked.history, strict=True):
        for key in (
            "val_recon",
            "val_response",
            "val_response_db",
            "val_recon_gain",
            "val_recon_freq",
            "val_recon_q",
            "val_silhouette",
        ):
            np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-7, err_msg=key)
        assert b["val_contrastive"] != a["val_contrastive"]  # within-chunk pairs only
    held_chunked = trainer.evaluate_dataset(whole.params, TINY, tc, val)
    monkeypatch.setattr(trainer, "EVAL_CHUNK", 4096)
    held_one = trainer.evaluate_dataset(whole.params, TINY, tc, val)
    for key in ("recon", "response_db", "silhouette"):
        np.testing.assert_allclose(held_chunked[key], held_one[key], rtol=1e-5, err_msg=key)


def test_kill_and_resume_ends_where_an_uninterrupted_run_ends(splits, tmp_path):
    train, val = splits
    full = trainer.fit(train, TINY, TINY_TRAIN, val_ds=val, workdir=tmp_path / "full")
    # interrupted after epoch 3: the checkpoint of epoch 2 is the newest one on disk
    stopped = trainer.fit(
        train,
        TINY,
        TINY_TRAIN,
        val_ds=val,
        workdir=tmp_path / "cut",
        on_epoch_end=lambda record: record["epoch"] == 3,
    )
    assert stopped.epochs_done == 3
    resumed = trainer.fit(train, TINY, TINY_TRAIN, val_ds=val, workdir=tmp_path / "cut")
    assert resumed.timings["epochs_run"] == 2  # epochs 3 and 4, from the epoch-2 checkpoint
    assert_trees_close(full.params, resumed.params, atol=1e-6)
    assert_trees_close(full.state.opt_state, resumed.state.opt_state, atol=1e-6)
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


def test_resume_on_another_device_count(splits, tmp_path):
    train, _ = splits
    eight = dataclasses.replace(TINY_TRAIN, devices=8)
    full = trainer.fit(train, TINY, eight, workdir=tmp_path / "full")
    trainer.fit(
        train,
        TINY,
        eight,
        workdir=tmp_path / "cut",
        on_epoch_end=lambda record: record["epoch"] == 2,
    )
    one = trainer.fit(
        train, TINY, dataclasses.replace(TINY_TRAIN, devices=1), workdir=tmp_path / "cut"
    )
    assert one.timings["epochs_run"] == 2
    assert len(jax.tree.leaves(one.params)[0].sharding.device_set) == 1
    assert_trees_close(full.params, one.params, atol=1e-5)


def test_nan_loss_raises_at_once(splits):
    train, _ = splits
    tc = dataclasses.replace(TINY_TRAIN, learning_rate=1e30, epochs=20)
    seen = []
    with pytest.raises(FloatingPointError, match="non-finite loss at epoch 1"):
        trainer.fit(train, TINY, tc, on_epoch_end=seen.append)
    assert seen == []


def test_bad_training_data_is_rejected(splits):
    train, val = splits
    one_word = make_synthetic(per_word=20, seed=2)
    one_word = one_word.subset(np.flatnonzero(one_word.word_ids == 0))
    with pytest.raises(ValueError, match="at least 2 words"):
        trainer.fit(one_word, TINY, TINY_TRAIN)
    with pytest.raises(ValueError, match="fewer than one batch"):
        trainer.fit(train.subset(np.arange(8)), TINY, TINY_TRAIN)
    other_words = dataclasses.replace(val, vocabulary=tuple(reversed(val.vocabulary)))
    with pytest.raises(ValueError, match="vocabulary"):
        trainer.fit(train, TINY, TINY_TRAIN, val_ds=other_words)


def test_shuffle_freq_q_moves_whole_frequency_q_pairs_between_rows_and_keeps_gains():
    layout = paramspace.DEFAULT_LAYOUT
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (16, 15)), jnp.float32)
    out = np.asarray(steps.shuffle_freq_q(jax.random.key(1), x, layout))
    x = np.asarray(x)
    np.testing.assert_array_equal(out[:, layout.gain_indices], x[:, layout.gain_indices])
    moved = False
    for freq, q in zip(layout.freq_indices, layout.q_indices):
        # each row's (freq, q) of this band is one row's pair, every row's pair used once
        source = [int(np.flatnonzero(x[:, freq] == f)[0]) for f in out[:, freq]]
        assert sorted(source) == list(range(16))
        np.testing.assert_array_equal(out[:, q], x[source, q])
        moved |= source != list(range(16))
    assert moved


def test_transformer_encoder_trains_end_to_end(splits):
    # (the residual encoder trains in every other test here)
    train, _ = splits
    tc = dataclasses.replace(TINY_TRAIN, epochs=8, learning_rate=3e-3, devices=1)
    for encoder in ("transformer",):
        config = dataclasses.replace(
            TINY, encoder=encoder, transformer_dim=8, transformer_heads=2, transformer_layers=1
        )
        result = trainer.fit(train, config, tc)
        first, last = result.history[0], result.history[-1]
        assert last["train_loss"] < 0.8 * first["train_loss"], encoder
        initial = networks.init_params(config, jax.random.fold_in(jax.random.key(tc.seed), 0))
        moved = [
            np.abs(np.asarray(a) - np.asarray(b)).max()
            for a, b in zip(
                jax.tree.leaves(initial["encoder"]), jax.tree.leaves(result.params["encoder"])
            )
        ]
        assert min(moved) > 0, encoder  # every encoder parameter was updated


# ---------------------------------------------------------------- two processes on loopback

WORKER = textwrap.dedent("""
    import sys
    import jax
    jax.config.update("jax_num_cpu_devices", 4)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=sys.argv[1], num_processes=2,
                               process_id=int(sys.argv[2]))
    import numpy as np
    from neuraleq_jax.data.dataset import stratified_split
    from neuraleq_jax.model import networks
    from neuraleq_jax.training import trainer
    from neuraleq_jax.training.checkpoints import host_array
    from neuraleq_jax.config import TrainConfig
    from neuraleq_jax.data.synthetic import make_synthetic
    train, _ = stratified_split(make_synthetic(per_word=8, seed=1), (0.75, 0.25), 0)
    config = networks.ModelConfig(encoder_widths=(16,), decoder_widths=(16,), latent_dim=4,
                                embedding_dim=8, mlp_width=8, dropout=0.1)
    assert jax.device_count() == 8 and jax.local_device_count() == 4
    result = trainer.fit(train, config, TrainConfig(epochs=2, batch_size=16, seed=3,
                                                     response_weight=0.0, cluster_weight=1.0))
    if jax.process_index() == 0:
        flat = {jax.tree_util.keystr(p): host_array(x)
                for p, x in jax.tree_util.tree_flatten_with_path(result.params)[0]}
        np.savez(sys.argv[3], **flat)
        with open(sys.argv[3] + ".json", "w") as f:
            import json
            json.dump(result.history, f)
    jax.distributed.shutdown()
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one_process(splits, tmp_path):
    train, _ = splits
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "params.npz"
    address = f"127.0.0.1:{_free_port()}"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), address, str(i), str(out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    try:
        logs = [p.communicate(timeout=120)[0].decode(errors="replace") for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)[-3000:]
    one = trainer.fit(
        train,
        TINY,
        TrainConfig(
            epochs=2, batch_size=16, seed=3, devices=1, response_weight=0.0, cluster_weight=1.0
        ),
    )
    flat = {
        jax.tree_util.keystr(p): np.asarray(x)
        for p, x in jax.tree_util.tree_flatten_with_path(one.params)[0]
    }
    with np.load(out) as stored:
        assert sorted(stored.files) == sorted(flat)
        for key in flat:
            np.testing.assert_allclose(stored[key], flat[key], atol=1e-5, rtol=0, err_msg=key)
    history = json.loads(Path(str(out) + ".json").read_text())
    for key in ("train_loss", "train_cluster", "train_contrastive"):
        assert history[-1][key] == pytest.approx(one.history[-1][key], abs=1e-5), key


@pytest.mark.slow
def test_default_config_learns_frequency_q_and_clusters(synthetic_preset_fit):
    """SPEC §6 figures of the synthetic preset on its held-out test split (regression guard).

    The preset's training run is the session's shared one; it must be the run the training
    command makes of the preset (same split, same configuration but for the device count)."""
    from neuraleq_jax import config as config_lib
    from neuraleq_jax.data.registry import build_datasets

    experiment = config_lib.load_preset("synthetic")
    train, _, test = build_datasets(experiment.data)
    fit = synthetic_preset_fit
    for ours, shared in ((train, fit["train"]), (test, fit["test"])):
        np.testing.assert_array_equal(ours.settings, shared.settings)
        np.testing.assert_array_equal(ours.word_ids, shared.word_ids)
    tc = dataclasses.replace(experiment.train, devices=1)
    assert (fit["model_config"], fit["train_config"]) == (experiment.model, tc)
    figures = trainer.evaluate_dataset(
        fit["result"].params, experiment.model, tc, test, reference_ds=train
    )
    # frequency and Q are learned: far below the error of always predicting the training mean
    assert figures["recon_freq"] < 0.5 * figures["mean_baseline_freq"]
    assert figures["recon_q"] < 0.5 * figures["mean_baseline_q"]
    assert figures["recon_gain"] < 0.25 * figures["mean_baseline_gain"]
    assert figures["silhouette"] > 0.45
    assert figures["response_db"] < 1.0
