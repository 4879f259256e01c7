"""Tests of the SPEC §6 figures against hand-computable cases and plain reference loops."""

import math

import jax
import numpy as np
import pytest

from neuraleq_jax.data import registry, synthetic
from neuraleq_jax.data.dataset import EQDataset
from neuraleq_jax.evaluation import evaluator, workdirs
from neuraleq_jax.metrics import goals, quality, silhouette
from neuraleq_jax.model import paramspace, response


def _silhouette_loop(points, labels):
    """Reference: the textbook definition, one sample at a time."""
    n = len(points)
    scores = []
    for i in range(n):
        same = [j for j in range(n) if labels[j] == labels[i] and j != i]
        if not same:
            scores.append(0.0)
            continue
        dist = lambda j, i=i: math.sqrt(
            sum((points[i][d] - points[j][d]) ** 2 for d in range(len(points[i])))
        )
        a = sum(dist(j) for j in same) / len(same)
        b = min(
            sum(dist(j) for j in range(n) if labels[j] == other)
            / sum(1 for j in range(n) if labels[j] == other)
            for other in set(labels)
            if other != labels[i]
        )
        scores.append((b - a) / max(a, b) if max(a, b) > 0 else 0.0)
    return sum(scores) / n


def test_silhouette_matches_reference_loop():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(41, 3)) + np.repeat(np.eye(3) * 2.0, [14, 14, 13], axis=0)
    labels = np.repeat([0, 1, 2], [14, 14, 13])
    labels[5] = 7  # a singleton cluster scores 0
    expected = _silhouette_loop(points.tolist(), labels.tolist())
    assert silhouette.silhouette_score(points, labels) == pytest.approx(expected, rel=1e-12)


def test_silhouette_string_labels_and_chunking(monkeypatch):
    rng = np.random.default_rng(1)
    points = rng.normal(size=(30, 4))
    labels = np.array(["warm", "bright", "soft"] * 10)
    expected = _silhouette_loop(points.tolist(), labels.tolist())
    monkeypatch.setattr(silhouette, "_CHUNK_ELEMENTS", 8)  # several row blocks
    assert silhouette.silhouette_score(points, labels) == pytest.approx(expected, rel=1e-12)


def test_silhouette_identical_clusters_is_one():
    points = np.repeat(np.array([[0.0, 0.0], [3.0, 4.0], [-1.0, 7.0]]), 5, axis=0)
    assert silhouette.silhouette_score(points, np.repeat([0, 1, 2], 5)) == 1.0


@pytest.mark.parametrize("labels", [np.zeros(4), np.arange(4)])
def test_silhouette_rejects_degenerate_label_counts(labels):
    with pytest.raises(ValueError, match="number of clusters"):
        silhouette.silhouette_score(np.random.default_rng(0).normal(size=(4, 2)), labels)


def test_silhouette_rejects_bad_shapes_and_nan():
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        silhouette.silhouette_score(np.zeros(5), np.arange(5))
    with pytest.raises(ValueError, match=r"labels must be"):
        silhouette.silhouette_score(np.zeros((5, 2)), np.arange(4))
    with pytest.raises(ValueError, match="finite"):
        silhouette.silhouette_score(np.full((4, 2), np.nan), np.array([0, 0, 1, 1]))


# ---------------------------------------------------------------- the other figures

LAYOUT = paramspace.DEFAULT_LAYOUT
GAINS = LAYOUT.gain_indices
_response_one = jax.jit(response.magnitude_response_db)  # one setting at a time, for loops


def _with_gains(gains_NxB, base=None):
    base = paramspace.flat_setting(LAYOUT) if base is None else base
    settings = np.tile(base, (len(gains_NxB), 1)).astype(np.float32)
    settings[:, GAINS] = gains_NxB
    return settings


def test_box_rate_edges_count_inside_and_beyond_margin_outside():
    box = synthetic.GAIN_BOXES_DB[0]  # warm
    low, high = box[:, 0] - 0.5, box[:, 1] + 0.5
    settings = _with_gains(np.stack([low, high, low - 0.01, high + 0.01]))
    out = evaluator.box_rate(settings, np.zeros(4, int), synthetic.GAIN_BOXES_DB)
    assert out["box_rate"] == 0.5 and out["gain_in_box_rate"] == 0.5
    assert out["freq_q_in_range_rate"] == 1.0
    assert out["per_word"][0] == 0.5 and np.isnan(out["per_word"][1])


def test_box_rate_one_bad_frequency_costs_its_setting_all_gains():
    centre = synthetic.GAIN_BOXES_DB[1].mean(axis=1)
    settings = _with_gains(np.stack([centre, centre]))
    settings[1, LAYOUT.freq_indices[2]] = LAYOUT.upper[LAYOUT.freq_indices[2]] * 1.01
    out = evaluator.box_rate(settings, np.array([1, 1]), synthetic.GAIN_BOXES_DB)
    assert out["box_rate"] == 0.5 and out["gain_in_box_rate"] == 1.0
    assert out["freq_q_in_range_rate"] == 0.5 and out["per_word"][1] == 0.5


def test_box_rate_rejects_bad_boxes_and_ids():
    settings = _with_gains(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="boxes must be"):
        evaluator.box_rate(settings, np.zeros(2, int), np.zeros((8, 4, 2)))
    with pytest.raises(ValueError, match="word_ids must lie"):
        evaluator.box_rate(settings, np.array([0, 8]), synthetic.GAIN_BOXES_DB)


def test_data_gain_boxes_are_per_word_percentiles():
    ds = synthetic.make_synthetic(per_word=30, seed=3)
    boxes = evaluator.data_gain_boxes(ds.settings, ds.word_ids, 8)
    for w in range(8):
        for b in range(5):
            gains = sorted(ds.settings[ds.word_ids == w, GAINS[b]].astype(float))
            assert boxes[w, b, 0] == pytest.approx(np.percentile(gains, 5))
            assert boxes[w, b, 1] == pytest.approx(np.percentile(gains, 95))
            # inside the true box the data were drawn from
            assert synthetic.GAIN_BOXES_DB[w, b, 0] - 1e-6 <= boxes[w, b, 0] <= boxes[w, b, 1]
            assert boxes[w, b, 1] <= synthetic.GAIN_BOXES_DB[w, b, 1] + 1e-6


def test_response_error_against_direct_computation():
    ds = synthetic.make_synthetic(per_word=3, seed=1)
    other = synthetic.make_synthetic(per_word=3, seed=2)
    expected = [
        float(response.rms_db(_response_one(a), _response_one(b)))
        for a, b in zip(ds.settings, other.settings)
    ]
    out = evaluator.response_error(ds.settings, other.settings)
    assert out["mean_db"] == pytest.approx(np.mean(expected), rel=1e-4)
    assert out["median_db"] == pytest.approx(np.median(expected), rel=1e-4)
    assert out["max_db"] == pytest.approx(max(expected), rel=1e-4)
    assert evaluator.response_error(ds.settings, ds.settings)["max_db"] == 0.0


def test_word_accuracy_on_class_means_is_one():
    # each word's held-out settings are one setting repeated: the class mean response is exactly
    # that setting's response, so generating it is classified correctly
    centres = _with_gains(synthetic.GAIN_BOXES_DB.mean(axis=2))
    heldout = np.repeat(centres, 4, axis=0)
    heldout_ids = np.repeat(np.arange(8), 4)
    out = evaluator.word_accuracy(centres, np.arange(8), heldout, heldout_ids, 8)
    assert out["generated"] == 1.0 and out["data"] == 1.0
    np.testing.assert_array_equal(out["predicted_generated"], np.arange(8))
    np.testing.assert_array_equal(out["predicted_data"], heldout_ids)
    wrong = evaluator.word_accuracy(centres, np.roll(np.arange(8), 1), heldout, heldout_ids, 8)
    assert wrong["generated"] == 0.0
    np.testing.assert_array_equal(wrong["predicted_generated"], np.arange(8))


def test_word_accuracy_matches_reference_loop():
    ds = synthetic.make_synthetic(per_word=6, seed=4)
    gen = synthetic.make_synthetic(per_word=2, seed=5)
    resp = {i: np.asarray(_response_one(s), dtype=float) for i, s in enumerate(ds.settings)}
    means = [
        np.mean([resp[i] for i in range(len(ds)) if ds.word_ids[i] == w], axis=0) for w in range(8)
    ]

    def label(setting):
        r = np.asarray(_response_one(setting), dtype=float)
        return int(np.argmin([np.sqrt(np.mean((r - m) ** 2)) for m in means]))

    expected_gen = np.mean([label(s) == w for s, w in zip(gen.settings, gen.word_ids)])
    expected_data = np.mean([label(s) == w for s, w in zip(ds.settings, ds.word_ids)])
    out = evaluator.word_accuracy(gen.settings, gen.word_ids, ds.settings, ds.word_ids, 8)
    assert out["generated"] == pytest.approx(expected_gen)
    assert out["data"] == pytest.approx(expected_data)


def test_calibration_of_data_against_itself_is_one():
    ds = synthetic.make_synthetic(per_word=10, seed=6)
    out = evaluator.variation_calibration(ds.settings, ds.word_ids, ds.settings, ds.word_ids, 8)
    assert out["median"] == pytest.approx(1.0) and out["min"] == pytest.approx(1.0)
    assert out["max"] == pytest.approx(1.0)


def test_calibration_halved_spread_gives_one_half():
    ds = synthetic.make_synthetic(per_word=10, seed=7)
    shrunk = ds.settings.copy()
    for w in range(8):
        rows = ds.word_ids == w
        mean = shrunk[rows][:, GAINS].mean(axis=0)
        shrunk[np.ix_(rows, GAINS)] = mean + 0.5 * (shrunk[rows][:, GAINS] - mean)
    out = evaluator.variation_calibration(shrunk, ds.word_ids, ds.settings, ds.word_ids, 8)
    assert out["min"] == pytest.approx(0.5, rel=1e-4) and out["max"] == pytest.approx(0.5, rel=1e-4)


def test_linear_path_in_response_has_smoothness_one():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=256), rng.normal(size=256)
    path = a + np.linspace(0, 1, 33)[:, None] * (b - a)
    assert quality.path_smoothness(path) == pytest.approx(1.0, abs=1e-12)
    assert quality.path_smoothness(np.zeros((5, 8))) == 1.0  # a path that never moves


def test_path_with_a_jump_hand_computed():
    # steps of 1, 1, 1 and 7 dB (a constant offset over the grid): max 7 / mean 2.5
    path = np.array([0.0, 1.0, 2.0, 3.0, 10.0])[:, None] * np.ones((1, 16))
    assert quality.path_smoothness(path) == pytest.approx(2.8)
    with pytest.raises(ValueError, match="S >= 2"):
        quality.path_smoothness(np.zeros((1, 16)))


def test_morph_smoothness_and_end_points_on_settings():
    warm, bright = _with_gains(synthetic.GAIN_BOXES_DB[:2].mean(axis=2))
    t = np.linspace(0, 1, 33)[:, None]
    path = (1 - t) * warm + t * bright
    jumpy = np.where(t < 0.5, warm, bright)
    smooth = evaluator.morph_smoothness(np.stack([path, jumpy]).astype(np.float32))
    assert smooth[0] < 1.2  # gains linear in t: nearly even steps in dB
    assert smooth[1] == pytest.approx(32.0)  # one step carries the whole distance
    centres = np.stack([warm, bright])
    ends = evaluator.morph_endpoint_error(
        path[None].astype(np.float32), np.array([[0, 1]]), centres
    )
    np.testing.assert_allclose(ends, [[0.0, 0.0]], atol=1e-6)
    swapped = evaluator.morph_endpoint_error(
        path[None].astype(np.float32), np.array([[1, 0]]), centres
    )
    expected = float(
        response.rms_db(
            response.magnitude_response_db(warm), response.magnitude_response_db(bright)
        )
    )
    np.testing.assert_allclose(swapped, [[expected, expected]], rtol=1e-4)


def test_check_goals_fidelity_rows_and_real_data_bound():
    figures = {
        "distribution_match_mean": 1.5,
        "distribution_match_worst": 2.5,
        "copy_rate": 0.05,
        "blend_fidelity_worst": 0.2,
        "mean_response_noise_ratio_worst": 1.0,
    }
    rows = {r["key"]: r for r in goals.check_goals(figures)}
    assert rows["distribution_match_mean"]["passed"]
    assert rows["distribution_match_worst"]["passed"]  # synthetic: worst <= 3
    assert rows["copy_rate"]["passed"] and not rows["blend_fidelity_worst"]["passed"]
    assert rows["blend_fidelity_worst"]["margin"] == pytest.approx(-0.05)
    real = {r["key"]: r for r in goals.check_goals(figures, real_data=True)}
    assert not real["distribution_match_worst"]["passed"]  # SAFE-DB: every word <= 2
    assert real["distribution_match_worst"]["goal"] == "≤ 2"


def test_check_goals_pass_miss_and_margins():
    rows = {
        r["key"]: r
        for r in goals.check_goals(
            {
                "latent_silhouette": 0.9,
                "box_rate": 0.97,
                "response_error_mean_db": 0.25,
                "word_accuracy": 0.70,
                "word_accuracy_data": 0.75,
                "calibration_median": 1.4,
                "morph_smoothness_max": 1.5,
                "morph_endpoint_max_db": float("nan"),
            }
        )
    }
    assert rows["latent_silhouette"]["passed"] and rows["latent_silhouette"][
        "margin"
    ] == pytest.approx(0.05)
    assert not rows["box_rate"]["passed"] and rows["box_rate"]["margin"] == pytest.approx(-0.01)
    assert rows["response_error_mean_db"]["margin"] == pytest.approx(0.25)
    assert not rows["word_accuracy"]["passed"]  # SPEC: >= the data's own - 0.03
    assert rows["word_accuracy"]["margin"] == pytest.approx(-0.02)
    assert rows["calibration_median"]["margin"] == pytest.approx(-0.1)
    assert rows["morph_smoothness_max"]["passed"]  # the bound itself passes
    assert not rows["morph_endpoint_max_db"]["passed"]


class _OracleSystem:
    """A stand-in system with known figures: one-hot latents, exact reconstruction, every
    generated setting at its word's box centre, linear morphs between the centres."""

    def __init__(self, known):
        self.vocabulary, self.layout = known.vocabulary, LAYOUT
        self._known = known
        self._centres = _with_gains(synthetic.GAIN_BOXES_DB.mean(axis=2))

    def encode(self, settings):
        match = (np.asarray(settings)[:, None] == self._known.settings[None]).all(-1)
        return np.eye(8)[self._known.word_ids[match.argmax(axis=1)]]

    def reconstruct(self, settings):
        return np.asarray(settings)

    def centre_settings(self):
        return self._centres

    def generate_eq_from_semantic(self, word, variations=5, *, seed=None, as_array=False):
        if not isinstance(word, str):
            raise TypeError("single words only")  # as the lite baseline: no blends
        w = self.vocabulary.index(word)
        out = np.repeat(self._centres[w : w + 1], variations, axis=0)
        out[:, GAINS] += np.random.default_rng(seed).uniform(-0.3, 0.3, (variations, 5))
        return out

    def morph_between_terms(self, a, b, steps=10, *, seed=None, as_array=False):
        t = np.linspace(0, 1, steps)[:, None]
        ca, cb = self._centres[self.vocabulary.index(a)], self._centres[self.vocabulary.index(b)]
        return ((1 - t) * ca + t * cb).astype(np.float32)

    def explore_latent_space(self, n_samples=20, *, seed=None, as_array=False):
        return np.repeat(self._centres[:1], n_samples, axis=0)


def test_evaluate_system_on_an_oracle():
    ds = synthetic.make_synthetic(per_word=8, seed=11)
    out = evaluator.evaluate_system(_OracleSystem(ds), ds, n_variations=6, steps=9)
    assert out["latent_silhouette"] == 1.0  # one-hot latents: identical clusters
    assert out["response_error_mean_db"] == 0.0
    assert out["box_rate"] == 1.0 and out["all_in_range"]
    assert out["morph_endpoint_max_db"] < 1e-4
    assert out["setup"]["n_pairs"] == 28 and len(out["details"]["morph_smoothness"]) == 28
    import json

    json.dumps(out)  # JSON-ready


def test_evaluate_system_rejects_mismatched_vocabulary():
    ds = synthetic.make_synthetic(per_word=4)
    other = EQDataset(ds.settings, ds.word_ids, tuple(reversed(ds.vocabulary)))
    with pytest.raises(ValueError, match="vocabulary"):
        evaluator.evaluate_system(_OracleSystem(ds), other)


# ---------------------------------------------------------------- the command and the report

import json  # noqa: E402

from neuraleq_jax.cli import evaluate  # noqa: E402
from neuraleq_jax.data.dataset import stratified_split  # noqa: E402
from neuraleq_jax.evaluation import report  # noqa: E402

SMALL_CONFIG = {
    "name": "tiny",
    "data": {
        "dataset": "synthetic",
        "per_word": 16,
        "data_seed": 2,
        "split_seed": 1,
        "split_fractions": [0.5, 0.25, 0.25],
    },
}


def test_split_from_config_rebuilds_the_training_split():
    train, heldout, _, text = registry.split_from_config(SMALL_CONFIG)
    parts = stratified_split(
        synthetic.make_synthetic(per_word=16, seed=2), (0.5, 0.25, 0.25), seed=1
    )
    np.testing.assert_array_equal(train.settings, parts[0].settings)
    np.testing.assert_array_equal(heldout.settings, parts[2].settings)
    assert "held-out 32 settings" in text
    with pytest.raises(ValueError, match="data.dataset must be one of"):
        registry.split_from_config({"data": {"dataset": "nope"}})


def test_evaluate_command_baseline_only_small_config(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps(SMALL_CONFIG))
    code = evaluate.main(
        [
            "--workdir",
            str(tmp_path),
            "--baseline-only",
            "--n-variations",
            "8",
            "--seed",
            "3",
            "--fidelity-per-word",
            "20",
        ]
    )
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())  # strict JSON
    assert metrics["model"] is None and metrics["setup"]["seed"] == 3
    base = metrics["baseline"]
    assert 0 < base["explained_variance"] <= 1 and base["all_in_range"]
    assert base["morph_smoothness_max"] <= 1.5
    assert {r["key"] for r in metrics["goals"]["baseline"]} == {g[0] for g in goals.GOALS}
    # every fidelity figure is computed (none is missing from its goal row)
    rows = {r["key"]: r for r in metrics["goals"]["baseline"]}
    for key in (
        "distribution_match_mean",
        "distribution_match_worst",
        "copy_rate",
        "blend_fidelity_worst",
        "mean_response_noise_ratio_worst",
    ):
        assert np.isfinite(rows[key]["margin"]), key
    assert metrics["baseline"]["setup"]["n_fidelity_heldout"] == 20 * 8  # the fresh draw
    assert "fresh synthetic draw, 20 settings per word" in metrics["setup"]["fidelity_heldout"]
    gaussian = metrics["references"]["unit_gaussian"]
    assert 0 < gaussian["distribution_match_mean"] < 3 and gaussian["copy_rate"] == 0
    text = (tmp_path / "report.md").read_text()
    assert "## Fidelity: generated variations against the held-out data" in text
    assert "| distribution match (mean) | ≤ 2 |" in text
    assert "reference: per-word Gaussian in unit space" in text
    assert "| latent silhouette | ≥ 0.85 |" in text and "lite baseline" in text
    assert metrics["plots"], "matplotlib is a dependency: the report has its plots"
    for plot in metrics["plots"]:
        assert (tmp_path / plot).is_file() and (tmp_path / plot).read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "box rate" in printed and "baseline distribution match per word: warm" in printed
    assert "reference unit-space Gaussian: distribution match" in printed


def test_evaluate_without_matplotlib_says_so_and_leaves_no_empty_plot_folder(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    (tmp_path / "config.json").write_text(json.dumps(SMALL_CONFIG))
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    metrics = evaluate.evaluate_workdir(tmp_path, n_variations=8, baseline_only=True)
    assert metrics["plots"] == [] and not (tmp_path / workdirs.PLOTS_DIR).exists()
    assert any("pip install matplotlib" in note for note in metrics["notes"])


def test_evaluate_command_reports_a_missing_config(tmp_path, capsys):
    assert evaluate.main(["--workdir", str(tmp_path / "absent"), "--baseline-only"]) == 2
    assert "config.json" in capsys.readouterr().err


def test_report_table_shows_pass_and_miss_with_margins():
    figures = {
        "latent_silhouette": 0.9,
        "box_rate": 0.975,
        "response_error_mean_db": 0.4,
        "word_accuracy": 0.8,
        "word_accuracy_data": 0.75,
        "calibration_median": 1.0,
        "morph_smoothness_max": 1.2,
        "morph_endpoint_max_db": 0.1,
    }
    text = report.render_report(
        {
            "setup": {},
            "model": figures,
            "baseline": None,
            "goals": {"model": goals.check_goals(figures)},
        }
    )
    assert "| latent silhouette | ≥ 0.85 | 0.900 | pass (+0.050) |" in text
    assert "| box rate | ≥ 0.98 | 97.5% | **miss** (−0.5%) |" in text
    assert "Model: box rate = 97.5%, goal ≥ 0.98, missed by 0.5%." in text
