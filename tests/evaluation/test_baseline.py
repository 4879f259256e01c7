"""Tests of the lite PCA + kNN baseline."""

import numpy as np
import pytest
from tolerances import assert_unit_close, gamma

from neuraleq_jax.data import synthetic
from neuraleq_jax.evaluation import evaluator
from neuraleq_jax.evaluation.baseline import LiteBaseline, equal_step_fractions, kernel_knn_weights
from neuraleq_jax.model import paramspace, response

LAYOUT = paramspace.DEFAULT_LAYOUT


@pytest.fixture(scope="module")
def data():
    return synthetic.make_synthetic(per_word=20, seed=0)


@pytest.fixture(scope="module")
def fitted(data):
    model = LiteBaseline()
    model.fit(data)
    return model


def _inside(settings):
    settings = np.asarray(settings).reshape(-1, LAYOUT.n_params)
    return bool(
        np.all(
            (settings >= LAYOUT.lower.astype(np.float32))
            & (settings <= LAYOUT.upper.astype(np.float32))
        )
    )


def test_explained_variance_matches_covariance_eigenvalues(data, fitted):
    unit = data.normalized().astype(np.float64)
    eig = np.sort(np.linalg.eigvalsh(np.cov(unit.T)))[::-1]
    assert 0 < fitted.explained_variance <= 1
    assert fitted.explained_variance == pytest.approx(eig[:8].sum() / eig.sum(), rel=1e-9)
    assert fitted.encode(data.settings).shape == (len(data), 8)


def test_full_rank_pca_round_trip_is_exact(data):
    model = LiteBaseline(n_components=15)
    assert model.fit(data)["explained_variance"] == pytest.approx(1.0)
    # a 15-term projection and back, each a 15-term sum: γ_30 in unit space
    assert_unit_close(model.reconstruct(data.settings), data.settings, gamma(30))


def test_every_returned_setting_is_in_range(fitted, data):
    assert _inside(fitted.reconstruct(data.settings))
    assert _inside(fitted.centre_settings())
    for word in fitted.vocabulary:
        assert _inside(fitted.generate_eq_from_semantic(word, 50, strength=1.7, as_array=True))
    assert _inside(fitted.morph_between_terms("heavy", "bright", 20, as_array=True))
    assert _inside(fitted.explore_latent_space(40, as_array=True))
    assert _inside(fitted.explore_latent_space(10, novel=True, as_array=True))


def test_morph_is_smooth_for_every_pair_and_ends_at_centres(fitted):
    pairs = evaluator.word_pairs(8)
    paths = np.stack(
        [
            fitted.morph_between_terms(
                fitted.vocabulary[a], fitted.vocabulary[b], steps=33, as_array=True
            )
            for a, b in pairs
        ]
    )
    assert evaluator.morph_smoothness(paths).max() <= 1.5
    ends = evaluator.morph_endpoint_error(paths, pairs, fitted.centre_settings())
    assert ends.max() < 1e-3


def test_evenly_spaced_morph_never_jumps(fitted):
    # continuity: refining the steps shrinks the largest step; a hard switch of neighbour set
    # would keep one step of fixed size however many steps there are
    def biggest_step(steps):
        path = fitted.morph_between_terms(
            "warm", "bright", steps, as_array=True, constant_speed=False
        )
        resp = np.asarray(response.reference_response_db(path))
        return np.sqrt(((resp[1:] - resp[:-1]) ** 2).mean(-1)).max()

    coarse, fine = biggest_step(33), biggest_step(1025)
    assert fine < coarse / 8


def test_kernel_weights_vanish_where_a_neighbour_leaves():
    dist = np.array([[0.1, 0.5, 1.0, 1.0 - 1e-9, 3.0]])
    index, weights = kernel_knn_weights(dist, 3)
    assert index[0].tolist() == [0, 1, 3]
    assert weights.sum() == pytest.approx(1.0)
    assert weights[0, -1] < 1e-8  # the 3rd neighbour ties with the 4th: weight ~0
    _, equal = kernel_knn_weights(np.ones((1, 4)), 2)  # all equidistant: equal weights
    np.testing.assert_allclose(equal, [[0.5, 0.5]])


def test_equal_step_fractions_respace_an_uneven_path():
    t = np.linspace(0, 1, 401)
    resp = (t**3)[:, None] * np.ones((1, 4))  # distance grows like t^3
    cut = equal_step_fractions(t, resp, 5)
    np.testing.assert_allclose(cut, np.cbrt(np.linspace(0, 1, 5)), atol=5e-3)


def test_seeded_determinism(fitted):
    a = fitted.generate_eq_from_semantic("warm", 6, seed=3, as_array=True)
    b = fitted.generate_eq_from_semantic("warm", 6, seed=3, as_array=True)
    c = fitted.generate_eq_from_semantic("warm", 6, seed=4, as_array=True)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(
        fitted.explore_latent_space(5, seed=1, as_array=True),
        fitted.explore_latent_space(5, seed=1, as_array=True),
    )


def test_generated_gains_follow_the_word(fitted):
    gains = fitted.generate_eq_from_semantic("heavy", 40, as_array=True)[:, LAYOUT.gain_indices]
    box = synthetic.GAIN_BOXES_DB[synthetic.VOCABULARY.index("heavy")]
    assert np.all((gains >= box[:, 0] - 1e-4) & (gains <= box[:, 1] + 1e-4))  # convex averages
    flat = fitted.generate_eq_from_semantic("heavy", 3, strength=0.0, as_array=True)
    assert np.all(flat[:, LAYOUT.gain_indices] == 0.0)


def test_dict_output_and_records_input(data):
    records = paramspace.to_dicts(data.settings[:40])
    for record, word in zip(records, data.words[:40]):
        record["term"] = word
    model = LiteBaseline(n_components=3, n_neighbors=2)
    model.load_dataset(records)
    assert model.train()["n_components"] == 3
    out = model.generate_eq_from_semantic("warm", 2)
    assert len(out) == 2 and set(out[0]) == set(LAYOUT.param_names)


def test_bad_input(fitted):
    with pytest.raises(ValueError, match="Did you mean 'warm'"):
        fitted.generate_eq_from_semantic("wram")
    with pytest.raises(TypeError, match="single word"):
        fitted.generate_eq_from_semantic({"warm": 1.0})
    with pytest.raises(ValueError, match="variations"):
        fitted.generate_eq_from_semantic("warm", 0)
    with pytest.raises(ValueError, match="steps"):
        fitted.morph_between_terms("warm", "bright", 1)
    with pytest.raises(ValueError, match="strength"):
        fitted.generate_eq_from_semantic("warm", strength=float("nan"))
    with pytest.raises(ValueError, match="outside"):
        fitted.encode(np.full((1, 15), 1e6))
    with pytest.raises(RuntimeError, match="load_dataset"):
        LiteBaseline().generate_eq_from_semantic("warm")


def test_evaluate_system_on_the_baseline_small_config():
    data = synthetic.make_synthetic(per_word=24, seed=0)
    from neuraleq_jax.data.dataset import stratified_split

    train, _, test = stratified_split(data, seed=0)
    model = LiteBaseline()
    model.fit(train)
    out = evaluator.evaluate_system(model, test, n_variations=20, steps=33)
    assert out["all_in_range"] and out["box_rate"] == 1.0
    assert out["morph_smoothness_max"] <= 1.5 and out["morph_endpoint_max_db"] < 1e-3
    assert 0 < out["word_accuracy_data"] <= 1 and 0 < out["calibration_median"] < 1.5
    assert out["response_error_mean_db"] > 0.1  # 8 of 15 dimensions lose information


def _rms_db_loop(responses_NxF, reference_RxF) -> np.ndarray:
    """Nearest RMS-dB distance of each response to the reference ones, one pair at a time."""
    a, b = np.asarray(responses_NxF, np.float64), np.asarray(reference_RxF, np.float64)
    return np.array([min(np.sqrt(np.mean((row - ref) ** 2)) for ref in b) for row in a])


def test_novel_exploration_reports_and_orders_by_novelty_db(fitted, data):
    rows = fitted.explore_latent_space(6, novel=True, seed=3)
    settings = paramspace.from_dicts(rows, LAYOUT)
    np.testing.assert_array_equal(
        settings, fitted.explore_latent_space(6, novel=True, seed=3, as_array=True)
    )
    expected = _rms_db_loop(
        response.reference_response_db(settings), response.reference_response_db(data.settings)
    )
    novelty = np.array([row["novelty_db"] for row in rows])
    np.testing.assert_allclose(novelty, expected, rtol=1e-6, atol=1e-4)
    assert np.all(np.diff(novelty) <= 0)
    assert "novelty_db" not in fitted.explore_latent_space(6, seed=3)[0]


def test_describe_names_each_words_centre_first(fitted):
    centres = fitted.centre_settings()
    nearest = fitted.describe(centres, k=3)
    assert [row[0][0] for row in nearest] == list(fitted.vocabulary)
    assert all(row[0][1] < 1e-3 and row[0][1] <= row[1][1] <= row[2][1] for row in nearest)
    one = fitted.describe(centres[2], k=2)  # one setting: one list
    assert one[0][0] == fitted.vocabulary[2] and len(one) == 2


def test_word_map_places_words_as_far_apart_as_their_centres_sound(fitted):
    points = fitted.word_map()
    assert points.shape == (len(fitted.vocabulary), 2) and points.dtype == np.float32
    responses = np.asarray(response.reference_response_db(fitted.centre_settings()), np.float64)
    sound = np.sqrt(((responses[:, None] - responses[None]) ** 2).mean(-1))
    mapped = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    upper = np.triu_indices(len(points), 1)
    # the map is a 2-D projection: it never stretches a distance, and keeps their order roughly
    assert np.all(mapped[upper] <= sound[upper] * (1 + 1e-4) + 1e-4)
    assert np.corrcoef(mapped[upper], sound[upper])[0, 1] > 0.7


def test_word_info_counts_each_words_settings(fitted, data):
    for w, word in enumerate(fitted.vocabulary):
        info = fitted.word_info(word)
        assert info["word"] == word and info["confidence"] is None
        settings = int(np.sum(np.asarray(data.word_ids) == w))
        assert info["sources"] == [
            {"name": "data", "settings": settings, "contributors": None, "agreement": None}
        ]
    with pytest.raises(ValueError, match="unknown word"):
        fitted.word_info("wram")
