"""Fitting the word model after training (:func:`fit_word_model`).

The word model is a dict of NumPy arrays, every per-word array with a leading word axis ``W``:
each word's kernel density over its encoded training latents (what :mod:`.sampling` draws
variations from), its centre (morph end points, describe, the word map), and what exploration
and novelty ranking need. The fit runs in named steps: encode the training settings, the
within-word kernel scale, the centres, the bandwidth calibrated on validation data, the
exploration arrays.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from neuraleq_jax import models, response
from neuraleq_jax.data import EQDataset
from neuraleq_jax.fidelity import (
    COPY_THRESHOLD_DB,
    energy_distance,
    energy_from_means,
    mean_pairwise_distance,
)
from neuraleq_jax.generation import crossing
from neuraleq_jax.generation.common import _decode_physical, decode_latents, encode_latents

PROTOTYPE_ANCHOR = 0.002
# kernel bandwidths tried, in units of each word's within-word latent std per dimension
BANDWIDTHS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
RESPONSE_ROWS = 512


@functools.partial(jax.jit, static_argnames=("config", "layout", "steps"))
def _prototype_latents(
    params,
    config,
    start_WxL,
    scale_WxL,
    target_db_WxF,
    layout,
    steps: int = 300,
    learning_rate: float = 0.02,
    anchor_weight: float = PROTOTYPE_ANCHOR,
):
    """Latents whose decoded responses best match each word's mean data response (RMS dB).

    The mean of a word's latents can decode to atypical frequencies and Q (those carry no word
    information, so nothing pins them at the latent mean); the prototype is the decodable
    setting nearest the word's average sound. Adam in latent space from ``start``, clipped to
    the tanh range, all words at once; ``anchor_weight`` (dB² per squared within-word standard
    deviation ``scale``) keeps it inside the word's own latent cloud, where the decoder was
    trained and is smooth.
    """
    import optax

    def loss(latent_WxL):
        decoded = _decode_physical(params, config, latent_WxL, layout)
        mismatch = jnp.mean(
            (response.magnitude_response_db(decoded, layout=layout) - target_db_WxF) ** 2, axis=-1
        )
        drift = jnp.mean(((latent_WxL - start_WxL) / scale_WxL) ** 2, axis=-1)
        return jnp.sum(mismatch + anchor_weight * drift)

    optimizer = optax.adam(learning_rate)

    def step(carry, _):
        latent, state = carry
        updates, state = optimizer.update(jax.grad(loss)(latent), state)
        return (jnp.clip(optax.apply_updates(latent, updates), -0.999, 0.999), state), None

    (latent, _), _ = jax.lax.scan(step, (start_WxL, optimizer.init(start_WxL)), None, steps)
    return latent


def _check_fit_inputs(dataset: EQDataset, validation: EQDataset | None, bandwidths) -> None:
    counts = np.bincount(dataset.word_ids, minlength=len(dataset.vocabulary))
    if np.any(counts == 0):
        absent = [w for w, c in zip(dataset.vocabulary, counts) if c == 0]
        raise ValueError(
            f"cannot fit a word model: no training settings for {absent}; every "
            f"word of the vocabulary needs at least one"
        )
    if validation is not None and (
        tuple(validation.vocabulary) != tuple(dataset.vocabulary)
        or validation.layout != dataset.layout
    ):
        raise ValueError(
            "the validation set must share the training set's vocabulary (same "
            "words, same order) and layout"
        )
    if (
        not len(bandwidths)
        or not all(float(h) > 0 for h in bandwidths)
        or list(bandwidths) != sorted(bandwidths)
    ):
        raise ValueError(
            f"bandwidths must be a non-empty ascending sequence of numbers > 0, "
            f"got {tuple(bandwidths)}"
        )


def _within_word_scale(latents_NxL, ids_N, n_words: int, prior_weight: float) -> np.ndarray:
    """Per-word, per-dimension latent std ``[W, L]``, each variance shrunk toward the pooled
    within-word one by ``prior_weight`` pseudo-settings (a word seen once still gets one)."""
    means_WxL = np.stack([latents_NxL[ids_N == w].mean(0) for w in range(n_words)])
    residual_NxL = latents_NxL - means_WxL[ids_N]
    pooled_L = (residual_NxL**2).sum(0) / max(len(latents_NxL) - n_words, 1)
    variances = [
        ((residual_NxL[ids_N == w] ** 2).sum(0) + prior_weight * pooled_L)
        / (np.sum(ids_N == w) - 1 + prior_weight)
        for w in range(n_words)
    ]
    return np.sqrt(np.stack(variances)) + 1e-6


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


def _mean_responses(settings_NxP, ids_N, n_words: int, layout) -> np.ndarray:
    """Each word's mean dB response ``[W, F]`` over its settings."""
    db_NxF = _responses(settings_NxP, layout)
    return np.stack([db_NxF[ids_N == w].mean(axis=0) for w in range(n_words)])


def _word_centres(
    params, config, latents_NxL, ids_N, scale_WxL, mean_db_WxF, layout, prototype: bool
) -> dict[str, np.ndarray]:
    """Each word's centre: the mean of its latents, refined (``prototype``) to the latent whose
    decoded response is nearest the word's mean training response (:func:`_prototype_latents`);
    with the dB responses of the centre settings it decodes to."""
    n_words = len(scale_WxL)
    centres_WxL = np.stack([latents_NxL[ids_N == w].mean(0) for w in range(n_words)])
    if prototype:
        centres_WxL = np.asarray(
            _prototype_latents(
                params,
                config,
                centres_WxL.astype(np.float32),
                scale_WxL.astype(np.float32),
                mean_db_WxF.astype(np.float32),
                layout,
            )
        )
    decoded = decode_latents(params, config, centres_WxL.astype(np.float32), layout)
    return {
        "centres_WxL": centres_WxL.astype(np.float32),
        "centre_responses_WxF": _responses(decoded, layout).astype(np.float32),
    }


def _kde_points(latents_NxL, ids_N, n_words: int) -> tuple[np.ndarray, np.ndarray]:
    """Each word's latents ``[W, N, L]`` (``N`` the largest count; a shorter word's rows are
    padded with its first latent, never drawn) and the counts ``[W]``."""
    counts_W = np.bincount(ids_N, minlength=n_words).astype(np.int32)
    points_WxNxL = np.empty((n_words, counts_W.max(), latents_NxL.shape[1]), np.float32)
    for w in range(n_words):
        mine = latents_NxL[ids_N == w]
        points_WxNxL[w] = np.concatenate(
            [mine, np.repeat(mine[:1], counts_W.max() - len(mine), axis=0)]
        )
    return points_WxNxL, counts_W


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


def _explore_arrays(
    latents_NxL, dataset: EQDataset, max_reference: int, seed: int
) -> dict[str, np.ndarray]:
    """A Gaussian over all training latents (exploration) and at most ``max_reference``
    training responses (novelty ranking)."""
    reference = dataset.settings
    if len(reference) > max_reference:
        pick = np.random.default_rng(seed).choice(len(reference), max_reference, replace=False)
        reference = reference[np.sort(pick)]
    values, vectors = np.linalg.eigh(np.atleast_2d(np.cov(latents_NxL.T, bias=True)))
    spread_LxL = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    return {
        "global_centre_L": latents_NxL.mean(axis=0).astype(np.float32),
        "global_spread_LxL": spread_LxL.astype(np.float32),
        "reference_responses_RxF": _responses(reference, dataset.layout).astype(np.float32),
    }


def _kde_arrays(
    latents_NxL, ids_N, n_words: int, scale_WxL, bandwidth: float, calibration: dict
) -> dict:
    """The kernel density's arrays of the word model: points, counts, kernel scale
    (``bandwidth · scale_WxL``), and the calibration's figures per bandwidth tried."""
    points_WxNxL, counts_W = _kde_points(latents_NxL, ids_N, n_words)
    return {
        "kde_points_WxNxL": points_WxNxL,
        "counts_W": counts_W,
        "kde_scale_WxL": (bandwidth * scale_WxL).astype(np.float32),
        "kde_bandwidth": np.float32(bandwidth),
        "kde_match_K": calibration["match_K"],
        "kde_copy_rate_K": calibration["copy_rate_K"],
        "kde_accuracy_K": calibration["accuracy_K"],
        "kde_in_range_K": calibration["in_range_K"],
        "kde_validation_accuracy": calibration["accuracy"],
    }


def _encoded(params, model_config, dataset: EQDataset) -> np.ndarray:
    """The dataset's settings encoded: float64 latents ``[N, L]``."""
    settings = dataset.settings
    return encode_latents(params, model_config, settings, dataset.layout).astype(np.float64)


def fit_word_model(
    params,
    model_config: models.ModelConfig,
    dataset: EQDataset,
    *,
    validation: EQDataset | None = None,
    freq_q_crossings: int = 0,
    bandwidths=BANDWIDTHS,
    bandwidth_scale: float = 1.0,
    prior_weight: float = 4.0,
    calibration_samples: int = 256,
    max_copy_rate: float = 0.02,
    min_in_range: float = 0.98,
    max_reference: int = 4096,
    prototype: bool = True,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Fit the word model on training settings (after training).

    Each word's variations come from a kernel density over its encoded training latents
    (the full latent: semantic and detail parts): a training latent plus Gaussian noise with
    per-dimension std ``h · s_w``, where ``s_w`` is the word's within-word latent std (shrunk
    toward the pooled one by ``prior_weight`` pseudo-settings) and the bandwidth ``h`` is
    chosen from ``bandwidths`` on validation data (:func:`_calibrate_bandwidth`: best
    distribution match among the bandwidths that copy training settings at most
    ``max_copy_rate`` of the time, keep ``min_in_range`` of their gains inside the word's
    training range ± 0.5 dB and keep the words as recognisable as the validation settings
    are), then multiplied by ``bandwidth_scale``. Without a ``validation`` set a fifth of each
    word's training settings is held out for the choice. Each word's centre (decoded: the morph
    end points) is the mean of its latents, refined with ``prototype`` to the decodable setting
    nearest the word's mean training response. With ``freq_q_crossings`` > 0 all of this is
    fitted on the training settings crossed with every word's frequencies and Qs
    (:func:`.crossing.cross_frequency_and_q`); exploration and novelty keep them as they are.

    Returns a dict of NumPy arrays (``W`` words, ``N`` the most training settings of a word,
    ``L`` latent dims, ``F`` reference grid, ``K`` bandwidths tried): ``kde_points_WxNxL``,
    ``counts_W``, ``kde_scale_WxL`` (``h · s_w``), ``kde_bandwidth`` (``h``, scalar),
    ``kde_match_K``, ``kde_copy_rate_K``, ``kde_accuracy_K``, ``kde_in_range_K`` and
    ``kde_validation_accuracy`` (the calibration), ``centres_WxL``,
    ``centre_responses_WxF``, ``global_centre_L`` and ``global_spread_LxL`` (a Gaussian over
    all training latents, for explore) and ``reference_responses_RxF`` (training responses for
    novelty, at most ``max_reference``).
    """
    _check_fit_inputs(dataset, validation, bandwidths)
    if not bandwidth_scale > 0:
        raise ValueError(f"bandwidth_scale must be > 0, got {bandwidth_scale}")
    training = dataset
    if freq_q_crossings:
        dataset, validation = crossing.crossed_density_source(
            training, validation, freq_q_crossings, seed, held_out=_calibration_split
        )
    layout, n_words, ids = dataset.layout, len(dataset.vocabulary), dataset.word_ids
    latents_NxL = _encoded(params, model_config, dataset)
    scale_WxL = _within_word_scale(latents_NxL, ids, n_words, prior_weight)
    mean_db_WxF = _mean_responses(dataset.settings, ids, n_words, layout)
    args = (params, model_config, latents_NxL, ids, scale_WxL, mean_db_WxF, layout, prototype)
    centres = _word_centres(*args)
    calibration = _calibrate_bandwidth(
        params,
        model_config,
        dataset,
        validation,
        latents_NxL,
        scale_WxL,
        tuple(bandwidths),
        samples=calibration_samples,
        max_copy_rate=max_copy_rate,
        min_in_range=min_in_range,
        seed=seed,
    )
    bandwidth = calibration["bandwidth"] * float(bandwidth_scale)
    return {
        **_kde_arrays(latents_NxL, ids, n_words, scale_WxL, bandwidth, calibration),
        **centres,
        **_explore_arrays(
            latents_NxL if training is dataset else _encoded(params, model_config, training),
            training,
            max_reference,
            seed,
        ),
    }
