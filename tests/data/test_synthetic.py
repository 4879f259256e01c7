"""Synthetic data set (SPEC §3) and the dataset type's splits and loaders."""

import numpy as np
import pytest

from neuraleq_jax.data.dataset import (
    EQDataset,
    from_arrays,
    from_records,
    grouped_split,
    stratified_split,
)
from neuraleq_jax.data.synthetic import GAIN_BOXES_DB, VOCABULARY, make_synthetic
from neuraleq_jax.data.vocabulary import word_index
from neuraleq_jax.model import paramspace as ps

L = ps.DEFAULT_LAYOUT


def test_vocabulary_order_and_reference_size():
    assert VOCABULARY == ("warm", "bright", "heavy", "soft", "sharp", "smooth", "punchy", "hollow")
    ds = make_synthetic()
    assert len(ds) == 560
    assert ds.counts() == {w: 70 for w in VOCABULARY}


@pytest.mark.parametrize("per_word", [1, 13, 500])
def test_every_gain_in_box_and_freq_q_in_range(per_word):
    ds = make_synthetic(per_word=per_word, seed=per_word)
    assert ds.counts() == {w: per_word for w in VOCABULARY}
    gains = ds.settings[:, L.gain_indices]
    box = GAIN_BOXES_DB[ds.word_ids]
    assert np.all(gains >= box[..., 0]) and np.all(gains <= box[..., 1])
    assert np.all(ds.settings >= L.lower.astype(np.float32))
    assert np.all(ds.settings <= L.upper.astype(np.float32))
    ps.validate(ds.settings)


def test_warm_box_matches_spec_table():
    np.testing.assert_array_equal(GAIN_BOXES_DB[0], [[2, 6], [0, 3], [-2, 1], [-3, 0], [-4, -1]])
    np.testing.assert_array_equal(GAIN_BOXES_DB[7], [[0, 3], [-4, -1], [-5, -2], [-3, 0], [1, 4]])


def test_distributions_uniform_gain_and_log_uniform_freq():
    ds = make_synthetic(per_word=4000, seed=1)
    warm = ds.settings[ds.word_ids == 0]
    assert warm[:, 0].mean() == pytest.approx(4.0, abs=0.06)  # uniform 2..6
    assert warm[:, 0].std() == pytest.approx(4 / np.sqrt(12), abs=0.03)
    log_f = np.log(ds.settings[:, 1])  # log-uniform 20..200
    assert log_f.mean() == pytest.approx(np.log(np.sqrt(20 * 200)), abs=0.01)
    assert np.median(ds.settings[:, 1]) == pytest.approx(np.sqrt(20 * 200), rel=0.03)
    # frequency carries no word information
    per_word = [np.log(ds.settings[ds.word_ids == w, 4]).mean() for w in range(8)]
    assert np.ptp(per_word) < 0.05


def test_seed_determinism():
    a, b, c = make_synthetic(seed=5), make_synthetic(seed=5), make_synthetic(seed=6)
    np.testing.assert_array_equal(a.settings, b.settings)
    np.testing.assert_array_equal(a.word_ids, b.word_ids)
    assert not np.array_equal(a.settings, c.settings)


def test_stratified_split_disjoint_and_stratified():
    ds = make_synthetic(per_word=70)
    rows = {tuple(r) for r in ds.settings}
    assert len(rows) == 560
    train, val, test = stratified_split(ds, (0.7, 0.15, 0.15), seed=0)
    parts = [{tuple(r) for r in p.settings} for p in (train, val, test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert set.union(*parts) == rows
    assert train.counts() == {w: 49 for w in VOCABULARY}
    for word in VOCABULARY:  # 70 × 0.15 = 10.5 each
        assert {val.counts()[word], test.counts()[word]} == {10, 11}
    again = stratified_split(ds, seed=0)[2]
    np.testing.assert_array_equal(again.settings, test.settings)
    assert not np.array_equal(stratified_split(ds, seed=1)[2].settings, test.settings)
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(ds, (0.5, 0.2))


def test_grouped_split_keeps_contributors_apart():
    ds = make_synthetic(per_word=30)
    contributors = np.array([f"c{i % 23}" for i in range(len(ds))])
    ds = EQDataset(ds.settings, ds.word_ids, ds.vocabulary, ds.layout, contributors)
    parts = grouped_split(ds, seed=3)
    owners = [set(p.contributors) for p in parts]
    assert (
        not (owners[0] & owners[1]) and not (owners[0] & owners[2]) and not (owners[1] & owners[2])
    )
    assert sum(len(p) for p in parts) == len(ds)
    assert abs(len(parts[0]) / len(ds) - 0.7) < 0.1


def test_records_and_word_errors():
    ds = make_synthetic(per_word=2)
    records = [dict(row, term=word) for row, word in zip(ps.to_dicts(ds.settings), ds.words)]
    records[3]["semantic_label"] = records[3].pop("term")
    back = from_records(records)
    assert back.vocabulary == VOCABULARY
    np.testing.assert_allclose(back.settings, ds.settings, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown word 'wram'.*warm.*Did you mean 'warm'"):
        word_index("wram", VOCABULARY)
    del records[0]["term"]
    with pytest.raises(ValueError, match="setting 0 has no word"):
        from_records(records)
    with pytest.raises(ValueError, match="non-empty"):
        from_records([])
    arrays = from_arrays(ds.settings, ds.words)
    np.testing.assert_array_equal(arrays.word_ids, ds.word_ids)
