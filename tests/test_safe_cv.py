"""scripts/safe_cv.py: repeated contributor-grouped evaluation on a tiny synthetic set."""

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from neuraleq_jax.config import DataConfig, ExperimentConfig, TrainConfig
from neuraleq_jax.data.dataset import EQDataset, grouped_split
from neuraleq_jax.data.synthetic import make_synthetic
from neuraleq_jax.model.networks import ModelConfig

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "safe_cv.py"
RATIOS = (0.5, 1.0)
KW = dict(ratios=RATIOS, n_variations=12, steps=4, seed=0)


def _load_script():
    spec = importlib.util.spec_from_file_location("safe_cv", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cv = _load_script()


def _tiny_dataset() -> EQDataset:
    """Two synthetic words, 40 settings each, and 10 fake contributors of 4 + 4 settings."""
    full = make_synthetic(per_word=40, seed=0)
    rows = np.concatenate([np.flatnonzero(full.word_ids == w) for w in (0, 1)])
    word_ids = full.word_ids[rows].astype(np.int32)
    # contributor c holds the c-th 4 settings of each word, so every part gets both words
    rank = np.concatenate([np.arange(40), np.arange(40)])
    contributors = np.array([f"c{r // 4}" for r in rank])
    return EQDataset(full.settings[rows], word_ids, full.vocabulary[:2], full.layout, contributors)


def _tiny_experiment() -> ExperimentConfig:
    model = dataclasses.replace(
        ModelConfig(),
        latent_dim=4,
        embedding_dim=8,
        encoder_widths=(16,),
        decoder_widths=(16,),
        mlp_width=8,
    )
    return ExperimentConfig(
        name="tiny",
        model=model,
        train=TrainConfig(epochs=3, batch_size=16, variation_ratio=1.0, devices=1),
        data=DataConfig(split_fractions=(0.6, 0.2, 0.2)),
    )


@pytest.fixture(scope="module")
def result():
    return cv.cross_validate(
        _tiny_dataset(), _tiny_experiment(), split_seeds=(0, 1), progress=None, **KW
    )


def test_choose_ratio_rule():
    v = {
        0.6: {"word_accuracy": 0.95, "word_accuracy_data": 0.9},
        0.8: {"word_accuracy": 0.90, "word_accuracy_data": 0.9},  # ties count as passing
        1.0: {"word_accuracy": 0.85, "word_accuracy_data": 0.9},
    }
    assert cv.choose_ratio(v) == 0.8
    failing = {
        0.6: {"word_accuracy": 0.8, "word_accuracy_data": 0.9},
        0.8: {"word_accuracy": 0.8, "word_accuracy_data": 0.9},
        1.0: {"word_accuracy": 0.7, "word_accuracy_data": 0.9},
    }
    assert cv.choose_ratio(failing) == 0.8  # most accurate, the wider on a tie
    with pytest.raises(ValueError, match="no ratios"):
        cv.choose_ratio({})


def test_check_disjoint_rejects_shared_contributor():
    ds = _tiny_dataset()
    a, b = ds.subset(np.arange(0, 8)), ds.subset(np.arange(4, 12))  # share c1
    with pytest.raises(ValueError, match="'c1'"):
        cv.check_disjoint((a, b))
    cv.check_disjoint(grouped_split(ds, (0.6, 0.2, 0.2), 3))


def test_no_contributor_in_two_parts(result):
    everyone = {f"c{i}" for i in range(10)}
    assert len(result["splits"]) == 2 and result["skipped"] == []
    for split in result["splits"]:
        ids = {name: set(part["contributor_ids"]) for name, part in split["parts"].items()}
        assert not ids["train"] & ids["validation"]
        assert not ids["train"] & ids["test"]
        assert not ids["validation"] & ids["test"]
        assert ids["train"] | ids["validation"] | ids["test"] == everyone
        # 8 settings per contributor
        assert all(split["parts"][n]["settings"] == 8 * len(ids[n]) for n in ids)
    # two seeds give two different test sets
    tests = [tuple(s["parts"]["test"]["contributor_ids"]) for s in result["splits"]]
    assert tests[0] != tests[1]


def test_choice_follows_validation_rule(result):
    for split in result["splits"]:
        val = {float(r): f for r, f in split["validation"].items()}
        assert sorted(val) == list(RATIOS)
        assert split["chosen_ratio"] == cv.choose_ratio(val)
        assert split["preset_ratio"] == 1.0


def test_pooled_equals_plain_recomputation(result):
    for system in ("model", "model_preset_ratio", "baseline"):
        hits = total = data_hits = data_total = 0
        for split in result["splits"]:
            p = split["test"][system]["predictions"]
            split_hits = sum(
                1 for a, b in zip(p["generated_asked"], p["generated_predicted"]) if a == b
            )
            split_data = sum(1 for a, b in zip(p["data_true"], p["data_predicted"]) if a == b)
            # the stored labels are the ones behind each split's accuracies
            assert split["test"][system]["word_accuracy"] == pytest.approx(
                split_hits / len(p["generated_asked"]), abs=1e-12
            )
            assert split["test"][system]["word_accuracy_data"] == pytest.approx(
                split_data / len(p["data_true"]), abs=1e-12
            )
            assert len(p["generated_asked"]) == 2 * KW["n_variations"]
            assert len(p["data_true"]) == split["parts"]["test"]["settings"]
            hits, total = hits + split_hits, total + len(p["generated_asked"])
            data_hits, data_total = data_hits + split_data, data_total + len(p["data_true"])
        pooled = result["summary"][system]["pooled"]
        assert pooled["generated"] == pytest.approx(hits / total, abs=1e-12)
        assert pooled["data"] == pytest.approx(data_hits / data_total, abs=1e-12)
        assert (pooled["n_generated"], pooled["n_data"]) == (total, data_total)
        margins = [
            s["test"][system]["word_accuracy"] - s["test"][system]["word_accuracy_data"]
            for s in result["splits"]
        ]
        assert result["summary"][system]["splits_passing"] == sum(m >= 0 for m in margins)
        assert result["summary"][system]["margin_mean"] == pytest.approx(sum(margins) / 2)


def test_json_round_trip(result, tmp_path):
    path = cv.write_json(result, tmp_path / "out" / "cv.json")
    assert json.loads(path.read_text(encoding="utf-8")) == result
    assert [p.name for p in path.parent.iterdir()] == ["cv.json"]  # no temporary file left
    assert "|" in cv.table(result) and "pooled" in cv.table(result)


def test_test_contributors_cannot_change_the_choice(result):
    """Same train and validation parts, very different test data: same choice, other figures."""
    ds, experiment = _tiny_dataset(), _tiny_experiment()
    train, val, test = grouped_split(ds, experiment.data.split_fractions, 0)
    # the test contributors' settings replaced by other words' synthetic settings
    other = make_synthetic(per_word=40, seed=5)
    swap = np.concatenate(
        [np.flatnonzero(other.word_ids == w)[: len(test) // 2 + 1] for w in (6, 7)]
    )[: len(test)]
    altered = dataclasses.replace(test, settings=other.settings[swap])
    first = result["splits"][0]
    again = cv.evaluate_split(train, val, altered, experiment, **KW)
    assert again["validation"] == first["validation"]
    assert again["chosen_ratio"] == first["chosen_ratio"]
    # the altered test data did reach the test figures
    assert again["test"]["model"]["calibration_median"] != pytest.approx(
        first["test"]["model"]["calibration_median"], rel=1e-3
    )


def test_tiny_split_is_skipped():
    ds = _tiny_dataset()
    with pytest.raises(ValueError, match="every split was skipped"):
        cv.cross_validate(
            ds, _tiny_experiment(), split_seeds=(0,), min_per_word=100, progress=None, **KW
        )


def test_distribution_figures_per_word_and_their_summary(result):
    words = ("warm", "bright")
    for system in ("model", "model_preset_ratio", "baseline", "unit_gaussian"):
        per_split = [s["test"][system]["distribution_match_per_word"] for s in result["splits"]]
        for split, per_word in zip(result["splits"], per_split):
            assert tuple(per_word) == words and all(v > 0 for v in per_word.values())
            assert split["test"][system]["distribution_match_worst"] == max(per_word.values())
        summary = result["summary"][system]
        for word in words:
            values = [p[word] for p in per_split]
            assert summary["distribution_match_per_word"][word]["mean"] == pytest.approx(
                sum(values) / len(values), abs=1e-12
            )
            assert summary["distribution_match_per_word"][word]["max"] == max(values)
        assert summary["splits_passing_distribution"] == sum(
            max(p.values()) <= 2.0 for p in per_split
        )
    for split in result["splits"]:
        model = split["test"]["model"]
        assert 0 <= model["copy_rate"] <= 1 and model["blend_fidelity_worst"] >= 0
        assert model["worst_blend"] in ("0.7 warm + 0.3 bright", "0.7 bright + 0.3 warm")
    assert "distribution match <= 2: model" in cv.table(result)
