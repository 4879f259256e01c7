"""Fitting the word model after training (:func:`fit_word_model`).

The word model is a dict of NumPy arrays, every per-word array with a leading word axis ``W``:
each word's kernel density over its encoded training latents (what :mod:`.sampling` draws
variations from), its centre (morph end points, describe, the word map), and what exploration
and novelty ranking need. The fit runs in named steps:

1. encode the training settings (the full latent: semantic and detail parts);
2. each word's within-word latent std ``s_w`` per dimension, shrunk toward the pooled one;
3. the centres: the mean of each word's latents, refined (``prototype``) to the decodable
   setting nearest the word's mean training response;
4. the kernel bandwidth ``h`` chosen on validation data (:mod:`.bandwidth`: the best
   distribution match among the bandwidths that copy few training settings, keep the gains
   inside the word's training range ± 0.5 dB and keep the words as recognisable as the
   validation settings are); a variation is a training latent plus Gaussian noise of std
   ``h · s_w``;
5. the exploration arrays: a Gaussian over all training latents and the training responses
   that novelty is ranked against.

Where frequency and Q carry no word information, steps 1–4 can run on the training settings
crossed with every word's frequencies and Qs (:mod:`.crossing`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from neuraleq_jax.data.dataset import EQDataset
from neuraleq_jax.generation import crossing
from neuraleq_jax.generation.bandwidth import _calibrate_bandwidth, _responses
from neuraleq_jax.generation.common import _decode_physical, decode_latents, encode_latents
from neuraleq_jax.model import networks, response

PROTOTYPE_ANCHOR = 0.002
# kernel bandwidths tried, in units of each word's within-word latent std per dimension
BANDWIDTHS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


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
    model_config: networks.ModelConfig,
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
    """Fit the word model on training settings (after training); the steps are described in
    the module docstring.

    ``bandwidths`` are tried on ``validation`` (None: a fifth of each word's training settings)
    with ``calibration_samples`` draws per word, allowing ``max_copy_rate`` and requiring
    ``min_in_range``; the choice is multiplied by ``bandwidth_scale``. ``prior_weight``
    pseudo-settings shrink each word's scale toward the pooled one; ``prototype`` refines the
    centres; ``freq_q_crossings`` > 0 fits on crossed settings (:mod:`.crossing`).

    Returns a dict of NumPy arrays (``W`` words, ``N`` the most points of a word, ``L`` latent
    dims, ``F`` reference grid, ``K`` bandwidths tried): ``kde_points_WxNxL``, ``counts_W``,
    ``kde_scale_WxL`` (``h · s_w``), ``kde_bandwidth`` (``h``), ``kde_match_K``,
    ``kde_copy_rate_K``, ``kde_accuracy_K``, ``kde_in_range_K``, ``kde_validation_accuracy``,
    ``centres_WxL``, ``centre_responses_WxF``, ``global_centre_L``, ``global_spread_LxL`` and
    ``reference_responses_RxF`` (at most ``max_reference`` training responses, for novelty).
    """
    _check_fit_inputs(dataset, validation, bandwidths)
    if not bandwidth_scale > 0:
        raise ValueError(f"bandwidth_scale must be > 0, got {bandwidth_scale}")
    training = dataset
    if freq_q_crossings:
        dataset, validation = crossing.crossed_density_source(
            training, validation, freq_q_crossings, seed
        )
    layout, n_words, ids = dataset.layout, len(dataset.vocabulary), dataset.word_ids
    latents_NxL = _encoded(params, model_config, dataset)
    scale_WxL = _within_word_scale(latents_NxL, ids, n_words, prior_weight)
    mean_db_WxF = _mean_responses(dataset.settings, ids, n_words, layout)
    args = (params, model_config, latents_NxL, ids, scale_WxL, mean_db_WxF, layout, prototype)
    centres = _word_centres(*args)
    options = dict(samples=calibration_samples, max_copy_rate=max_copy_rate, seed=seed)
    fitted = (params, model_config, dataset, validation, latents_NxL, scale_WxL)
    calibration = _calibrate_bandwidth(
        *fitted, tuple(bandwidths), min_in_range=min_in_range, **options
    )
    bandwidth = calibration["bandwidth"] * float(bandwidth_scale)
    explored_NxL = latents_NxL if training is dataset else _encoded(params, model_config, training)
    return {
        **_kde_arrays(latents_NxL, ids, n_words, scale_WxL, bandwidth, calibration),
        **centres,
        **_explore_arrays(explored_NxL, training, max_reference, seed),
    }
