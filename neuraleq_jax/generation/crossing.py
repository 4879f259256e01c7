"""Crossing training settings with every word's frequencies and Qs, for the word model.

Where frequency and Q carry no word information (the synthetic set, the assumption that
``TrainConfig.augment_shuffle_freq_q`` makes in training), a word's few training settings hold
only a few random frequencies and Qs per band, and the mean response of a density fitted on
them inherits that noise. Fitting the density on the word's gains crossed with the frequencies
and Qs of the whole training set estimates the word's average sound far better.
"""

from __future__ import annotations

import numpy as np

from neuraleq_jax.data.dataset import EQDataset
from neuraleq_jax.generation.bandwidth import _calibration_split


def cross_frequency_and_q(dataset: EQDataset, crossings: int, seed: int = 0) -> EQDataset:
    """Each training setting ``crossings`` times, band by band with the frequency and Q of a
    random training setting of any word (gains and word kept): ``[N · crossings]`` settings,
    row ``i · crossings + k`` a crossing of row ``i``; reproducible by ``seed``."""
    if isinstance(crossings, bool) or int(crossings) != crossings or int(crossings) < 1:
        raise ValueError(f"crossings must be an integer >= 1, got {crossings!r}")
    layout, n, crossings = dataset.layout, len(dataset), int(crossings)
    rng = np.random.default_rng([seed, 7])
    settings_MxP = np.repeat(dataset.settings, crossings, axis=0)
    for band_freq, band_q in zip(layout.freq_indices, layout.q_indices):
        donors_M = rng.integers(0, n, len(settings_MxP))
        settings_MxP[:, band_freq] = dataset.settings[donors_M, band_freq]
        settings_MxP[:, band_q] = dataset.settings[donors_M, band_q]
    word_ids_M = np.repeat(dataset.word_ids, crossings)
    return EQDataset(settings_MxP, word_ids_M, dataset.vocabulary, layout)


def crossed_density_source(
    training: EQDataset, validation: EQDataset | None, crossings: int, seed: int
) -> tuple[EQDataset, EQDataset]:
    """``(crossed settings the word model is fitted on, validation set)``. Without a validation
    set, the calibration's own held-out fifth (:func:`.bandwidth._calibration_split`) is taken
    *before* crossing, so that no crossed copy of a validation setting is among the density's
    points."""
    if validation is None:
        fit_rows, val_settings, val_ids = _calibration_split(training, None, seed)
        validation = EQDataset(val_settings, val_ids, training.vocabulary, training.layout)
        training = EQDataset(
            training.settings[fit_rows],
            training.word_ids[fit_rows],
            training.vocabulary,
            training.layout,
        )
    return cross_frequency_and_q(training, crossings, seed), validation
