"""Choosing the word model's kernel bandwidth on validation data.

Every candidate bandwidth is scored on common draws (the same picks and normal noise): decoded,
their responses are compared with the word's validation settings (distribution match), with
its training settings (copy rate) and with the words' centroids (word accuracy); the terms that
do not depend on the bandwidth are computed once. :func:`_calibrate_bandwidth` returns the
choice and the scores behind it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from neuraleq_jax.data.dataset import EQDataset
from neuraleq_jax.generation.common import decode_latents
from neuraleq_jax.metrics.distances import (
    energy_distance,
    energy_from_means,
    mean_pairwise_distance,
)
from neuraleq_jax.metrics.fidelity import COPY_THRESHOLD_DB
from neuraleq_jax.model import response

RESPONSE_ROWS = 512


def _responses(settings_NxP, layout) -> np.ndarray:
    """dB responses ``[N, F]`` (float64) of physical settings, in chunks of
    :data:`RESPONSE_ROWS` rows (the last padded with copies of its final row), so that every
    call of a fit (training, validation, draws, centres) runs one compiled program instead of
    tracing and loading one per row count; each row's response is the same either way."""
    settings_NxP = np.asarray(settings_NxP, np.float32)
    n_rows = len(settings_NxP)
    if not n_rows:
        return np.zeros((0, len(response.REFERENCE_FREQS)))
    padded = np.concatenate(
        [settings_NxP, np.repeat(settings_NxP[-1:], -n_rows % RESPONSE_ROWS, axis=0)]
    )
    chunks = [
        response.reference_response_db(padded[start : start + RESPONSE_ROWS], layout=layout)
        for start in range(0, len(padded), RESPONSE_ROWS)
    ]
    return np.concatenate([np.asarray(c, np.float64) for c in chunks])[:n_rows]


def _rms_distances(a_NxF, b_MxF) -> np.ndarray:
    """RMS dB distance between every row of ``a`` and of ``b``: ``[N, M]``."""
    sq_NxM = (a_NxF**2).sum(1)[:, None] + (b_MxF**2).sum(1)[None, :] - 2.0 * a_NxF @ b_MxF.T
    return np.sqrt(np.maximum(sq_NxM, 0.0) / a_NxF.shape[1])


def _calibration_split(dataset: EQDataset, validation: EQDataset | None, seed: int):
    """``(fit rows of the training set, validation settings, their word ids)``: the given
    validation set, or else a fifth of each word's training settings (words with >= 5) held
    out of the fit."""
    everything = np.arange(len(dataset))
    if validation is not None:
        return everything, validation.settings, validation.word_ids
    rng = np.random.default_rng(seed)
    held = np.concatenate(
        [
            rows[: len(rows) // 5]
            for w in range(len(dataset.vocabulary))
            for rows in [rng.permutation(np.flatnonzero(dataset.word_ids == w))]
        ]
    )
    fit_rows = np.setdiff1d(everything, held)
    return fit_rows, dataset.settings[held], dataset.word_ids[held]


def _kde_draws(
    latents_NxL, ids_N, scale_WxL, bandwidth: float, word: int, samples: int, seed: int
) -> np.ndarray:
    """``samples`` latents of ``word``'s kernel density (host NumPy; the same uniform picks and
    normal noise for every bandwidth, so that bandwidths are compared on common draws)."""
    rng = np.random.default_rng([seed, word])
    mine = latents_NxL[ids_N == word]
    picks = rng.integers(0, len(mine), samples)
    noise = rng.standard_normal((samples, latents_NxL.shape[1]))
    return np.clip(mine[picks] + bandwidth * scale_WxL[word] * noise, -1.0, 1.0)


def _recognised(db_NxF, ids_N, centroids_WxF) -> float:
    """Share of responses whose nearest centroid (RMS dB) is their own word's."""
    return float(np.mean(_rms_distances(db_NxF, centroids_WxF).argmin(1) == ids_N))


class _ScoringData(NamedTuple):
    """What scoring decoded draws compares them with, per word, computed once for every
    bandwidth: the responses of each word's validation and training settings, the
    validation settings' U-form within-word mean distance, the data's own energy distance
    (fit rows against validation), the fit rows' sizes and the words' centroids."""

    val_db: list[np.ndarray]
    train_db: list[np.ndarray]
    val_within_W: np.ndarray
    data_energy_W: np.ndarray
    fit_counts_W: np.ndarray
    scored_W: np.ndarray
    centroids_WxF: np.ndarray


def _scoring_data(
    fit_db_NxF, fit_ids_N, train_db_TxF, train_ids_T, val_db_VxF, val_ids_V, n_words: int
) -> _ScoringData:
    """:class:`_ScoringData` of the calibration split (responses in dB)."""
    fit = [fit_db_NxF[fit_ids_N == w] for w in range(n_words)]
    val = [val_db_VxF[val_ids_V == w] for w in range(n_words)]
    scored_W = np.array([len(v) >= 2 and len(f) >= 2 for f, v in zip(fit, val)])
    val_within_W = np.array(
        [mean_pairwise_distance(v) if ok else np.nan for v, ok in zip(val, scored_W)]
    )
    data_energy_W = np.array(
        [energy_distance(f, v) if ok else np.nan for f, v, ok in zip(fit, val, scored_W)]
    )
    return _ScoringData(
        val_db=val,
        train_db=[train_db_TxF[train_ids_T == w] for w in range(n_words)],
        val_within_W=val_within_W,
        data_energy_W=data_energy_W,
        fit_counts_W=np.array([len(f) for f in fit]),
        scored_W=scored_W,
        centroids_WxF=np.stack([f.mean(0) for f in fit]),
    )


def _word_draw_scores(draws_MxF, word: int, data: _ScoringData) -> tuple[float, np.ndarray, int]:
    """``(match, copies [M], recognised)`` of one word's decoded draws ``[M, F]`` from one
    distance matrix against the draws themselves, the word's validation and training
    responses and every word's centroid (the same kernel and the same formulas as
    :func:`fidelity.energy_distance` and :func:`fidelity.nearest_distance`)."""
    val, train = data.val_db[word], data.train_db[word]
    targets = np.concatenate([draws_MxF, val, train, data.centroids_WxF])
    dist_MxT = _rms_distances(draws_MxF, targets)
    samples, n_val, n_train = len(draws_MxF), len(val), len(train)
    within = dist_MxT[:, :samples]
    within[np.arange(samples), np.arange(samples)] = 0.0  # as fidelity: self-pairs exactly 0
    nearest_M = dist_MxT[:, samples + n_val : samples + n_val + n_train].min(axis=1)
    labels_M = dist_MxT[:, samples + n_val + n_train :].argmin(axis=1)
    match = np.nan
    if data.scored_W[word]:
        # fidelity.distribution_match's V form, the draws weighted as for the fit rows' size
        energy = energy_from_means(
            float(dist_MxT[:, samples : samples + n_val].sum()) / (samples * n_val),
            float(within.sum()) / (samples * (samples - 1)),
            float(data.val_within_W[word]),
            int(data.fit_counts_W[word]),
            n_val,
        )
        match = energy / max(float(data.data_energy_W[word]), 1e-9)
    return match, nearest_M <= COPY_THRESHOLD_DB, int(np.sum(labels_M == word))


def _draw_scores(draws_db_WxMxF, data: _ScoringData) -> tuple[float, float, float]:
    """``(match, copy rate, word accuracy)`` of decoded draws ``[W, M, F]`` (dB responses):
    the distribution match (:func:`fidelity.energy_distance`) against the validation settings
    (mean over the words with >= 2 fit and validation settings), the share within
    ``COPY_THRESHOLD_DB`` of a training setting of their word, and the share that the
    nearest-word classifier (each word's mean response over the fit rows) labels with their
    word."""
    n_words, samples = draws_db_WxMxF.shape[:2]
    per_word = [_word_draw_scores(draws_db_WxMxF[w], w, data) for w in range(n_words)]
    matches = [m for (m, _, _), ok in zip(per_word, data.scored_W) if ok]
    match = np.mean(matches) if matches else np.nan
    copies = np.mean(np.concatenate([c for _, c, _ in per_word]))
    accuracy = sum(r for _, _, r in per_word) / (n_words * samples)
    return float(match), float(copies), float(accuracy)


def _choose_bandwidth(
    match_K,
    copy_K,
    accuracy_K,
    inside_K,
    own_accuracy: float,
    max_copy_rate: float,
    min_in_range: float,
) -> int:
    """Index of the best distribution match among the bandwidths whose draws copy training
    settings at most ``max_copy_rate`` of the time, keep ``min_in_range`` of their gains inside
    the word's training range ± 0.5 dB and are recognised as their word at least as often as
    the validation settings are; failing that, the most recognisable of those that neither copy
    nor leave the range (or that do not copy), else the smallest bandwidth."""
    new, inside = copy_K <= max_copy_rate, inside_K >= min_in_range
    allowed = np.flatnonzero(new & inside & (accuracy_K >= own_accuracy) & np.isfinite(match_K))
    if len(allowed):
        return int(allowed[np.argmin(match_K[allowed])])
    for mask in (new & inside, new):
        if mask.any():
            return int(np.flatnonzero(mask)[np.argmax(accuracy_K[mask])])
    return 0


def _calibrate_bandwidth(
    params,
    config,
    dataset: EQDataset,
    validation,
    latents_NxL,
    scale_WxL,
    bandwidths,
    *,
    samples: int,
    max_copy_rate: float,
    min_in_range: float,
    seed: int,
) -> dict:
    """The kernel bandwidth (one of ``bandwidths``, ascending) chosen on validation data by
    :func:`_choose_bandwidth` from decoded draws: distribution match, copy rate and
    word accuracy (:func:`_draw_scores`), and the share of drawn gains inside the word's
    training gain range ± 0.5 dB. A wide kernel can match the spread of the responses yet blur
    the words into each other or leave their range. Returns ``bandwidth``, per bandwidth tried
    ``match_K``, ``copy_rate_K``, ``accuracy_K`` and ``in_range_K``, and the validation
    settings' own ``accuracy``."""
    layout, n_words = dataset.layout, len(dataset.vocabulary)
    fit_rows, val_settings, val_ids = _calibration_split(dataset, validation, seed)
    fit_latents, fit_ids = latents_NxL[fit_rows], dataset.word_ids[fit_rows]
    train_db, val_db = _responses(dataset.settings, layout), _responses(val_settings, layout)
    data = _scoring_data(
        train_db[fit_rows], fit_ids, train_db, dataset.word_ids, val_db, val_ids, n_words
    )
    gains = dataset.settings[:, layout.gain_indices]
    low_WxB = np.stack([gains[dataset.word_ids == w].min(0) for w in range(n_words)]) - 0.5
    high_WxB = np.stack([gains[dataset.word_ids == w].max(0) for w in range(n_words)]) + 0.5
    scores = []
    for bandwidth in bandwidths:
        draws = np.concatenate(
            [
                _kde_draws(fit_latents, fit_ids, scale_WxL, float(bandwidth), w, samples, seed)
                for w in range(n_words)
            ]
        )
        settings = decode_latents(params, config, draws.astype(np.float32), layout)
        drawn_WxMxB = settings[:, layout.gain_indices].reshape(n_words, samples, -1)
        inside = np.mean((drawn_WxMxB >= low_WxB[:, None]) & (drawn_WxMxB <= high_WxB[:, None]))
        scores.append(
            _draw_scores(_responses(settings, layout).reshape(n_words, samples, -1), data)
            + (float(inside),)
        )
    match_K, copy_K, accuracy_K, inside_K = map(np.array, zip(*scores))
    own = _recognised(val_db, val_ids, data.centroids_WxF)
    best = _choose_bandwidth(
        match_K, copy_K, accuracy_K, inside_K, own, max_copy_rate, min_in_range
    )
    return {
        "bandwidth": float(bandwidths[best]),
        "match_K": match_K.astype(np.float32),
        "copy_rate_K": copy_K.astype(np.float32),
        "accuracy_K": accuracy_K.astype(np.float32),
        "in_range_K": inside_K.astype(np.float32),
        "accuracy": np.float32(own),
    }
