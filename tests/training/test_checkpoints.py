"""Checkpoints: bundle round trip, missing/corrupt errors, keep-last-N + best, resharding."""

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from neuraleq_jax.config import TrainConfig
from neuraleq_jax.data.synthetic import VOCABULARY, make_synthetic
from neuraleq_jax.model import networks
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT
from neuraleq_jax.training import checkpoints, trainer
from neuraleq_jax.training.checkpoints import CheckpointError, CheckpointNotFoundError, ModelBundle

TINY = networks.ModelConfig(
    encoder_widths=(8,),
    decoder_widths=(8,),
    latent_dim=3,
    embedding_dim=4,
    mlp_width=4,
    dropout=0.0,
)


def make_bundle(seed=0) -> ModelBundle:
    params = networks.init_params(TINY, jax.random.key(seed))
    word_model = {
        "centres_WxL": np.arange(24, dtype=np.float32).reshape(8, 3),
        "truncation": np.asarray(2.0),
    }
    return ModelBundle(
        params=params,
        model_config=TINY,
        train_config=TrainConfig(epochs=3),
        layout=DEFAULT_LAYOUT,
        vocabulary=VOCABULARY,
        word_model=word_model,
        step=42,
        metadata={"note": "test", "figures": [1.5, None]},
    )


def biggest_file(folder: Path) -> Path:
    return max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def test_bundle_round_trip(tmp_path):
    bundle = make_bundle()
    path = checkpoints.save_bundle(tmp_path, bundle)
    assert path == (tmp_path / "bundle").resolve()
    loaded = checkpoints.load_bundle(tmp_path)
    for a, b in zip(jax.tree.leaves(bundle.params), jax.tree.leaves(loaded.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert jax.tree.structure(bundle.params) == jax.tree.structure(loaded.params)
    assert loaded.model_config == TINY and loaded.train_config == TrainConfig(epochs=3)
    assert loaded.layout == DEFAULT_LAYOUT and loaded.vocabulary == VOCABULARY
    assert loaded.step == 42 and loaded.metadata == {"note": "test", "figures": [1.5, None]}
    assert set(loaded.word_model) == {"centres_WxL", "truncation"}
    np.testing.assert_array_equal(
        loaded.word_model["centres_WxL"], bundle.word_model["centres_WxL"]
    )
    # the bundle folder itself is accepted too
    assert checkpoints.load_bundle(path).step == 42


def test_saving_again_replaces_the_bundle_and_leaves_no_temporaries(tmp_path):
    checkpoints.save_bundle(tmp_path, make_bundle(0))
    checkpoints.save_bundle(tmp_path, dataclasses.replace(make_bundle(1), step=7, word_model=None))
    loaded = checkpoints.load_bundle(tmp_path)
    assert loaded.step == 7 and loaded.word_model is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_saving_under_a_file_is_refused_and_leaves_the_file(tmp_path):
    taken = tmp_path / "model.txt"
    taken.write_text("someone's notes")
    with pytest.raises(NotADirectoryError, match=r"model.txt: it is a file; give a folder"):
        checkpoints.save_bundle(taken, make_bundle())
    assert taken.read_text() == "someone's notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.txt"]


def test_missing_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="no model bundle in"):
        checkpoints.load_bundle(tmp_path)
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        checkpoints.load_bundle(tmp_path / "nowhere")


@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_damaged_parameters_are_a_clear_error(tmp_path, damage):
    path = checkpoints.save_bundle(tmp_path, make_bundle())
    victim = biggest_file(path / "params")
    raw = bytearray(victim.read_bytes())
    if damage == "truncate":
        victim.write_bytes(raw[: len(raw) // 2])
    else:
        for i in range(len(raw) // 3, len(raw) // 3 + 64):
            raw[i] ^= 0x5A
        victim.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt or incomplete"):
        checkpoints.load_bundle(tmp_path)


def test_garbled_description_is_a_clear_error(tmp_path):
    path = checkpoints.save_bundle(tmp_path, make_bundle())
    (path / "bundle.json").write_text('{"format_version": 1, "model_con')
    with pytest.raises(CheckpointError, match="bundle.json is corrupt"):
        checkpoints.load_bundle(tmp_path)


def test_bundle_needs_a_vocabulary(tmp_path):
    with pytest.raises(ValueError, match="vocabulary"):
        checkpoints.save_bundle(tmp_path, dataclasses.replace(make_bundle(), vocabulary=()))


def state_on(sharding):
    params = networks.init_params(TINY, jax.random.key(3))
    state = trainer.TrainState(
        step=np.int32(5), params=params, opt_state=optax.adam(1e-3).init(params)
    )
    return jax.device_put(state, sharding)


def test_keeps_the_latest_and_the_best(tmp_path):
    store = checkpoints.TrainingCheckpoints(tmp_path, keep=2, metric="val_loss")
    state = state_on(jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    for epoch, loss in [(1, 0.5), (2, 0.1), (3, 0.7), (4, 0.9), (5, 0.95)]:
        store.save(epoch, state, {"run": "t"}, {"val_loss": loss})
    store.wait()
    assert store.all_epochs() == [2, 4, 5]
    assert store.latest_epoch() == 5 and store.best_epoch() == 2
    store.close()


def test_restore_onto_another_device_count(tmp_path):
    mesh = trainer.make_mesh(8)
    state = state_on(NamedSharding(mesh, P()))
    store = checkpoints.TrainingCheckpoints(tmp_path, keep=1)
    store.save(1, state, {"vocabulary": list(VOCABULARY)}, {"val_loss": 1.0})
    store.close()
    single = jax.sharding.SingleDeviceSharding(jax.devices()[3])
    reopened = checkpoints.TrainingCheckpoints(tmp_path, keep=1)
    restored, meta = reopened.restore(1, checkpoints.abstract_like(state, single))
    assert meta["vocabulary"] == list(VOCABULARY) and meta["epoch"] == 1
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert b.sharding == single
    assert isinstance(restored.opt_state[0], optax.ScaleByAdamState)
    reopened.close()


def test_corrupt_training_checkpoint_stops_resume_with_a_clear_error(tmp_path):
    train = make_synthetic(per_word=4, seed=0)
    tc = TrainConfig(
        epochs=2,
        batch_size=16,
        checkpoint_every=1,
        response_weight=0.0,
        cluster_weight=0.0,
        devices=1,
    )
    trainer.fit(train, TINY, tc, workdir=tmp_path)
    victim = biggest_file(tmp_path / "checkpoints" / "2" / "state")
    victim.write_bytes(victim.read_bytes()[:10])
    with pytest.raises(CheckpointError, match="training checkpoint at .*2 is corrupt"):
        trainer.fit(train, TINY, dataclasses.replace(tc, epochs=3), workdir=tmp_path)


def test_atomic_write_replaces_whole_files(tmp_path):
    target = tmp_path / "a" / "f.json"
    checkpoints.atomic_write_text(target, json.dumps({"x": 1}))
    checkpoints.atomic_write_text(target, json.dumps({"x": 2}))
    assert json.loads(target.read_text()) == {"x": 2}
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]


def test_tree_digest_sees_any_change():
    params = networks.init_params(TINY, jax.random.key(0))
    base = checkpoints.tree_digest(params)
    assert checkpoints.tree_digest(params) == base
    changed = jax.tree.map(lambda x: x, params)
    changed["decoder"]["gain_head"]["bias"] = (
        changed["decoder"]["gain_head"]["bias"].at[0].add(1e-7)
    )
    assert checkpoints.tree_digest(changed) != base
