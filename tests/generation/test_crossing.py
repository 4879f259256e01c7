"""The word model's frequency/Q crossing (generation.cross_frequency_and_q) and its config."""

import numpy as np
import pytest

from neuraleq_jax import config as config_lib
from neuraleq_jax import generation
from neuraleq_jax.data.synthetic import make_synthetic


def test_crossing_keeps_gains_and_words_and_takes_each_band_from_one_training_row():
    data = make_synthetic(per_word=6, seed=3)
    layout = data.layout
    crossed = generation.cross_frequency_and_q(data, crossings=4, seed=0)
    assert crossed.settings.shape == (4 * len(data), layout.n_params)
    assert crossed.vocabulary == data.vocabulary and crossed.layout == layout
    # row i·4 + k is training row i: its gains and word are kept
    np.testing.assert_array_equal(crossed.word_ids, np.repeat(data.word_ids, 4))
    np.testing.assert_array_equal(
        crossed.settings[:, layout.gain_indices],
        np.repeat(data.settings, 4, 0)[:, layout.gain_indices],
    )
    # each band's (frequency, Q) pair is that band's pair of some training row, of any word
    donors_from_other_words = 0
    for band, (f, q) in enumerate(zip(layout.freq_indices, layout.q_indices)):
        pairs = data.settings[:, [f, q]]
        for row, (freq, qval) in enumerate(crossed.settings[:, [f, q]]):
            matches = np.flatnonzero((pairs[:, 0] == freq) & (pairs[:, 1] == qval))
            assert len(matches), f"band {band} row {row}: ({freq}, {qval}) is no training pair"
            donors_from_other_words += data.word_ids[matches[0]] != crossed.word_ids[row]
    assert donors_from_other_words > 0  # pooled over words, not within each word
    again = generation.cross_frequency_and_q(data, crossings=4, seed=0)
    np.testing.assert_array_equal(again.settings, crossed.settings)
    other = generation.cross_frequency_and_q(data, crossings=4, seed=1)
    assert not np.array_equal(other.settings, crossed.settings)


def test_crossing_count_and_config_are_checked():
    data = make_synthetic(per_word=2, seed=0)
    with pytest.raises(ValueError, match="crossings must be an integer >= 1"):
        generation.cross_frequency_and_q(data, crossings=0)
    with pytest.raises(ValueError, match="word_model_freq_q_crossings must be >= 0"):
        config_lib.TrainConfig(word_model_freq_q_crossings=-1)
    assert config_lib.load_preset("synthetic").train.word_model_freq_q_crossings == 8


def test_crossed_density_without_validation_holds_out_before_crossing():
    """No crossed copy of a held-out validation setting is among the density's points: every
    crossed row's gains come from a fit row, and the held-out rows are the validation set."""
    from neuraleq_jax.generation.crossing import crossed_density_source

    data = make_synthetic(per_word=10, seed=2)
    crossed, validation = crossed_density_source(data, None, crossings=3, seed=0)
    gains = data.layout.gain_indices
    held = {tuple(row) for row in validation.settings[:, gains]}
    assert len(validation) == 2 * len(data.vocabulary)  # a fifth of each word's 10
    assert not held & {tuple(row) for row in crossed.settings[:, gains]}
    assert len(crossed) == 3 * (len(data) - len(validation))
