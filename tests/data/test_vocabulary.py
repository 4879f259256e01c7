"""The vocabulary helpers: unknown words, word sources and confidence, describe, the word map,
and the crowd fusion rule (no trained model needed here; see test_crowd.py)."""

import numpy as np
import pytest

from neuraleq_jax.data import crowd, vocabulary
from neuraleq_jax.data.synthetic import VOCABULARY, make_synthetic
from neuraleq_jax.language import compound
from neuraleq_jax.plots import maps


def test_unknown_word_small_vocabulary_lists_every_word():
    with pytest.raises(ValueError, match="known words: warm, bright.*Did you mean 'warm'"):
        vocabulary.word_index("wram", VOCABULARY)
    assert vocabulary.word_index(" Warm ", VOCABULARY) == 0


def test_unknown_word_large_vocabulary_is_one_line_with_five_spellings():
    words = tuple(f"word{i:03d}" for i in range(400)) + ("muddy", "moody", "mudy", "muddled")
    with pytest.raises(ValueError) as raised:
        compound.parse_weights("mudddy", words)
    message = str(raised.value)
    assert "\n" not in message and "neuraleq words" in message and "404 known words" in message
    close = message.split("close spellings: ")[1].split(";")[0].split(", ")
    assert 1 <= len(close) <= 5 and close[0] == "muddy" and set(close) <= set(words)
    assert "word000" not in message and len(message) < 300


def test_confidence_is_spearman_brown():
    assert vocabulary.confidence(0.5, 2) == pytest.approx(2 / 3)
    assert vocabulary.confidence(0.8, 1) == pytest.approx(0.8)
    many = vocabulary.confidence(0.8, 122)
    assert many == pytest.approx(122 * 0.8 / (1 + 121 * 0.8)) and 0.99 < many < 1
    assert vocabulary.confidence(None, 5) is None and vocabulary.confidence(0.5, None) is None
    assert vocabulary.confidence(float("nan"), 5) is None


def test_word_info_of_a_two_source_word():
    dataset = make_synthetic(per_word=3)
    n_words = len(dataset.vocabulary)
    settings = np.zeros((n_words, 2), int)
    settings[:, 0], settings[0, 1] = 10, 4
    people = np.full((n_words, 2), -1)
    people[:, 0], people[0, 1] = 30, 10
    agreement = np.full((n_words, 2), np.nan)
    agreement[:, 0], agreement[0, 1] = 0.8, 0.4
    words = vocabulary.WordDataset(
        settings=dataset.settings,
        word_ids=dataset.word_ids,
        vocabulary=dataset.vocabulary,
        source_names=("audealize", "safe"),
        source_settings=settings,
        source_contributors=people,
        source_agreement=agreement,
        langs=("English",) * n_words,
    )
    # a split keeps the per-word figures
    assert isinstance(words.subset([0, 1]), vocabulary.WordDataset)
    model = {"centre_responses_WxF": np.random.default_rng(0).normal(size=(n_words, 16))}
    model.update(vocabulary.bundle_arrays(words.subset([0, 1, 2]), model))
    info = vocabulary.word_info("WARM", dataset.vocabulary, model)
    assert info["word"] == "warm" and info["lang"] == "English"
    assert [s["name"] for s in info["sources"]] == ["audealize", "safe"]
    assert info["sources"][1] == {
        "name": "safe",
        "settings": 4,
        "contributors": 10,
        "agreement": pytest.approx(0.4),
    }
    assert info["contributors"] == 40
    assert info["agreement"] == pytest.approx((0.8 * 30 + 0.4 * 10) / 40)
    assert info["confidence"] == pytest.approx(vocabulary.confidence(info["agreement"], 40))
    bright = vocabulary.word_info("bright", dataset.vocabulary, model)
    assert [s["name"] for s in bright["sources"]] == ["audealize"]
    with pytest.raises(ValueError, match="unknown word 'wram'"):
        vocabulary.word_info("wram", dataset.vocabulary, model)


def test_plain_dataset_sources_count_settings_and_contributors():
    dataset = make_synthetic(per_word=4)
    arrays = vocabulary.plain_sources(dataset, "synthetic")
    assert arrays["source_names_S"].tolist() == ["synthetic"]
    np.testing.assert_array_equal(arrays["source_settings_WxS"][:, 0], 4)
    np.testing.assert_array_equal(arrays["source_contributors_WxS"], -1)
    wrapped = vocabulary.with_sources(dataset, "synthetic")
    np.testing.assert_array_equal(wrapped.settings, dataset.settings)
    assert wrapped.vocabulary == dataset.vocabulary


def test_nearest_words_match_a_plain_loop():
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 3, (30, 256))
    queries = np.concatenate([rng.normal(0, 3, (5, 256)), centres[[4, 17]]])
    index, distance = vocabulary.nearest_words(queries, centres, 5)
    for row, query in enumerate(queries):
        loop = [np.sqrt(np.mean((query - c) ** 2)) for c in centres]
        order = np.argsort(loop)[:5]
        np.testing.assert_array_equal(index[row], order)
        np.testing.assert_allclose(distance[row], np.sort(loop)[:5], rtol=1e-9, atol=1e-6)
    assert index[5, 0] == 4 and index[6, 0] == 17 and distance[5, 0] < 1e-6
    assert vocabulary.nearest_words(queries, centres, 99)[0].shape == (7, 30)


def test_word_map_keeps_distances_of_planar_responses():
    rng = np.random.default_rng(2)
    basis = np.linalg.qr(rng.normal(size=(64, 2)))[0].T  # two orthonormal responses [2, 64]
    coords = rng.normal(0, 4, (12, 2))
    responses = 1.5 + coords @ basis
    points = vocabulary.word_map(responses)
    assert points.shape == (12, 2) and points.dtype == np.float32
    from scipy.spatial.distance import pdist

    # map distance = Euclidean distance / sqrt(F) = the responses' RMS dB distance
    np.testing.assert_allclose(pdist(points), pdist(responses) / np.sqrt(64), rtol=1e-4)
    assert vocabulary.map_agreement(points, coords) == pytest.approx(1.0)
    rotated = coords @ np.array([[0.0, -1.0], [1.0, 0.0]]) * 3.0
    assert vocabulary.map_agreement(rotated, coords) == pytest.approx(1.0)
    shuffled = coords[rng.permutation(12)]
    assert vocabulary.map_agreement(shuffled, coords) < 0.9
    with pytest.raises(ValueError, match="layouts"):
        vocabulary.map_agreement(points[:2], coords[:2])


@pytest.mark.parametrize(
    "n_a, n_s, c_a, c_s", [(24, 532, 122, 60), (24, 5, 2, 3), (24, 6, 35, 30), (24, 100, 2, 1)]
)
def test_fused_counts_follow_the_contributor_ratio(n_a, n_s, c_a, c_s):
    keep_a, keep_s = crowd._fused_counts(n_a, n_s, c_a, c_s)
    assert 1 <= keep_a <= n_a and 1 <= keep_s <= n_s
    assert keep_a == n_a or keep_s == n_s  # the smaller side is kept whole
    assert keep_s / keep_a == pytest.approx(c_s / c_a, rel=0.5 / min(keep_a, keep_s) + 1e-9)


def test_describe_accepts_every_setting_form():
    from neuraleq_jax.model import paramspace, response

    dataset = make_synthetic(per_word=1, seed=4)
    centres = np.asarray(response.magnitude_response_db(dataset.settings))
    words = dataset.vocabulary
    rows = vocabulary.describe(dataset.settings, centres, words, k=3)
    assert [r[0][0] for r in rows] == list(words) and all(r[0][1] < 1e-3 for r in rows)
    named = paramspace.to_dicts(dataset.settings)
    assert vocabulary.describe(named[2], centres, words, k=2)[0][0] == words[2]
    assert [r[0][0] for r in vocabulary.describe(named, centres, words)] == list(words)
    single = vocabulary.describe(dataset.settings[5], centres, words, k=len(words))
    assert [w for w, _ in single][0] == words[5] and len(single) == len(words)
    distances = [d for _, d in single]
    assert distances == sorted(distances)
    with pytest.raises(ValueError, match="shape"):
        vocabulary.describe(np.zeros(14), centres, words)


def test_map_labels_never_share_a_cell_and_keep_the_most_confident():

    points = np.random.default_rng(5).uniform(-1, 1, (500, 2))
    order = np.argsort(-np.random.default_rng(6).uniform(size=500))
    chosen = maps._uncluttered(points, order, cells=(10, 10))
    assert chosen[0] == order[0] and len(chosen) <= 121  # (10 + 1) cells per axis at most
    cells = [
        tuple(((points[i] - points.min(0)) // ((points.max(0) - points.min(0)) / 10)).astype(int))
        for i in chosen
    ]
    assert len(set(cells)) == len(cells)
    rank = {int(i): r for r, i in enumerate(order)}
    assert [rank[i] for i in chosen] == sorted(rank[i] for i in chosen)
