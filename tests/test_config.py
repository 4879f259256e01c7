"""Configs: presets, typed overrides, JSON round trip, and the train command line."""

import json
from pathlib import Path

import numpy as np
import pytest

from neuraleq_jax import config
from neuraleq_jax.cli import train
from neuraleq_jax.config import ExperimentConfig, TrainConfig
from neuraleq_jax.training import checkpoints, experiment


@pytest.mark.parametrize("name", ["synthetic", "transformer", "large"])
def test_presets_load_and_round_trip_through_json(name, tmp_path):
    preset = config.load_preset(name)
    assert isinstance(preset, ExperimentConfig) and preset.name == name
    config.save_json(preset, tmp_path / "c.json")
    assert config.load_json(tmp_path / "c.json") == preset
    assert config.load_preset(str(tmp_path / "c.json")) == preset


def test_synthetic_preset_follows_the_spec_defaults():
    preset = config.load_preset("synthetic")
    # SPEC §4's budget; Adam peaks at 2e-3 and decays (held-out: silhouette 0.87 at 0.46 dB,
    # where 1e-3 on the same cosine reached 0.71 at 0.51 dB)
    assert (
        preset.model.latent_dim,
        preset.train.epochs,
        preset.train.batch_size,
        preset.train.learning_rate,
        preset.train.schedule,
    ) == (32, 50, 16, 2e-3, "cosine")
    assert 0 < preset.model.semantic_dim < preset.model.latent_dim
    assert preset.model.encoder == "residual" and preset.data.dataset == "synthetic"
    assert config.load_preset("transformer").model.encoder == "transformer"


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="synthetic"):
        config.load_preset("synthetc")


def test_presets_are_found_in_a_source_tree_and_in_an_installed_wheel(tmp_path):
    # source tree / editable install: <root>/configs beside <root>/neuraleq_jax
    source = tmp_path / "source"
    (source / "neuraleq_jax").mkdir(parents=True)
    (source / "configs").mkdir()
    (source / "configs" / "synthetic.py").write_text("")
    assert config.find_configs_dir(source / "neuraleq_jax") == source / "configs"
    # a wheel in site-packages: the presets travel inside the package, and a stray configs/
    # folder of another project beside it is not taken for ours
    site = tmp_path / "site-packages"
    (site / "neuraleq_jax" / "configs").mkdir(parents=True)
    (site / "configs").mkdir()
    real = Path(config.CONFIGS_DIR, "synthetic.py").read_text()
    (site / "neuraleq_jax" / "configs" / "synthetic.py").write_text(real)
    found = config.find_configs_dir(site / "neuraleq_jax")
    assert found == site / "neuraleq_jax" / "configs"
    assert config.available_presets(found) == ["synthetic"]
    assert config.load_preset("synthetic", found) == config.load_preset("synthetic")


def test_overrides_are_typed():
    base = config.load_preset("synthetic")
    changed = config.apply_overrides(
        base,
        config.parse_overrides(
            [
                "--train.epochs=7",
                "--model.encoder_widths",
                "32,64",
                "--temperature=0.05",
                "--data.split_fractions=[0.8, 0.2]",
                "--model.encoder=transformer",
                "--name",
                "x",
            ]
        ),
    )
    assert changed.train.epochs == 7 and changed.train.temperature == 0.05
    assert changed.model.encoder_widths == (32, 64) and changed.model.encoder == "transformer"
    assert changed.data.split_fractions == (0.8, 0.2) and changed.name == "x"
    assert config.differences(base, changed).keys() == {
        "name",
        "train.epochs",
        "train.temperature",
        "model.encoder_widths",
        "model.encoder",
        "data.split_fractions",
    }


@pytest.mark.parametrize(
    "args,match",
    [
        (["--train.epoch=3"], "unknown config field 'train.epoch'.*train.epochs"),
        (["--train.epochs=2.5"], "expects an integer"),
        (["--train.learning_rate=fast"], "expects a number"),
        (["--model.encoder_widths=a,b"], "expects an integer"),
        (["--train.epochs=0"], "epochs must be >= 1"),
        (["--model.encoder_widths=64,0"], r"encoder_widths must be widths >= 1, got \(64, 0\)"),
        (["--model.decoder_widths=-4"], r"decoder_widths must be widths >= 1, got \(-4,\)"),
        (["--model.encoder=lstm"], "encoder must be one of"),
        (["--data.split_fractions=0.5,0.1"], "sum"),
        (["--train.epochs"], "needs a value"),
        (["train.epochs=3"], "expected --section.field=value"),
    ],
)
def test_bad_overrides_are_clear_errors(args, match):
    with pytest.raises(ValueError, match=match):
        config.apply_overrides(config.load_preset("synthetic"), config.parse_overrides(args))


def test_train_config_validates_its_fields():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=1)
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear")


def test_cli_reports_bad_fields_and_exits_2(capsys, tmp_path):
    assert train.main(["--workdir", str(tmp_path), "--train.lr=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown config field 'train.lr'. Did you mean train.learning_rate," in err
    # a width the model cannot build is refused before anything is written
    assert train.main(["--workdir", str(tmp_path / "run"), "--model.encoder_widths=0"]) == 2
    assert "encoder_widths must be widths >= 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_prints_the_resolved_config(capsys, tmp_path):
    assert train.main(["--workdir", str(tmp_path), "--print_config", "--train.epochs=9"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["train"]["epochs"] == 9 and printed["model"]["latent_dim"] == 32


TINY_ARGS = [
    "--model.encoder_widths=8",
    "--model.decoder_widths=8",
    "--model.latent_dim=4",
    "--model.semantic_dim=0",
    "--model.embedding_dim=8",
    "--model.mlp_width=8",
    "--train.epochs=3",
    "--train.checkpoint_every=1",
    "--train.response_weight=0",
    "--train.cluster_weight=0",
    "--train.devices=1",
    "--data.per_word=6",
    "--quiet",
]


def test_cli_trains_resumes_and_writes_a_loadable_bundle(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEURALEQ_JAX_CACHE_DIR", "off")
    # the generation module fits the word model; here only the call site is under test
    monkeypatch.setattr(
        experiment,
        "fit_word_model_for_run",
        lambda params, model_config, train_config, ds, **kw: {"centres": np.zeros((8, 4))},
    )
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert train.main(["--workdir", str(full), *TINY_ARGS]) == 0
    out = capsys.readouterr().out
    assert "3 epochs" in out and "held-out: silhouette" in out and "bundle:" in out
    assert train.main(["--workdir", str(cut), "--stop_after_epoch=2", *TINY_ARGS]) == 0
    assert "stopped early" in capsys.readouterr().out
    assert not (cut / "bundle").exists()
    assert train.main(["--workdir", str(cut), *TINY_ARGS]) == 0
    a, b = checkpoints.load_bundle(full), checkpoints.load_bundle(cut)
    for x, y in zip(
        __import__("jax").tree.leaves(a.params),
        __import__("jax").tree.leaves(b.params),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-6, rtol=0)
    assert b.word_model["centres"].shape == (8, 4) and b.step == a.step
    saved = config.load_json(cut / "config.json")
    assert saved.train.epochs == 3 and saved.model.latent_dim == 4
    assert len((cut / "metrics.jsonl").read_text().splitlines()) == 3
    # a different model in the same workdir is refused, naming the field
    assert train.main(["--workdir", str(cut), *TINY_ARGS, "--model.latent_dim=5"]) == 1
    assert "model.latent_dim: 4 → 5" in capsys.readouterr().err
