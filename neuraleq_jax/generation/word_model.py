"""Fitting the word model after training (:func:`fit_word_model`)."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from neuraleq_jax import models, response
from neuraleq_jax.data import EQDataset
from neuraleq_jax.generation.common import (_decode_physical, _in_latent_range,
                                            _no_fold_planes, decode_latents, encode_latents)
from neuraleq_jax.generation.sampling import fold_draws

PROTOTYPE_ANCHOR = 0.002


@functools.partial(jax.jit, static_argnames=("config", "layout"))
def _gain_jacobians(params, config, centres_WxL, layout):
    """d(gains in dB)/d(latent) at each word centre: ``[W, B, L]``."""
    def gains(latent_L):
        return _decode_physical(params, config, latent_L[None], layout)[0, layout.gain_indices]
    return jax.vmap(jax.jacfwd(gains))(centres_WxL)


@functools.partial(jax.jit, static_argnames=("config", "layout"))
def _calibration_draws(params, config, centres_WxL, spreads_WxLxK, z_WxMxK, layout):
    """Settings ``[W, M, P]`` of each word's variations for fixed standard draws ``[W, M, K]``."""
    def one(centre_L, spread_LxK, z_MxK):
        return _decode_physical(params, config, _in_latent_range(centre_L + z_MxK @ spread_LxK.T),
                                layout)
    return jax.vmap(one)(centres_WxL, spreads_WxLxK, z_WxMxK)


@functools.partial(jax.jit, static_argnames=("config", "layout"))
def _response_jacobians(params, config, latents_WxL, layout):
    """d(dB response)/d(latent) of decoded latents: ``[W, F, L]``."""
    def respond(latent_L):
        setting = _decode_physical(params, config, latent_L[None], layout)[0]
        return response.magnitude_response_db(setting, layout=layout)
    return jax.vmap(jax.jacfwd(respond))(latents_WxL)


def fold_planes(centre_responses_WxF, response_jacobians_WxFxK, centroids_WxF,
                margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Each word's boundaries with every other word, as planes in its standard-draw space.

    A setting is recognised as word ``w`` rather than ``v`` when its dB response ``r`` is nearer
    ``w``'s centroid ``μ_w`` (RMS dB, SPEC §6's classifier):
    ``2 r·(μ_v - μ_w) <= |μ_v|² - |μ_w|²``.
    With ``r ≈ r_w + G_w z`` (``G_w``: the response's Jacobian in the draws ``z`` at the
    variation centre) this is ``a·z <= b``, returned as a unit normal ``a/|a|`` and the offset
    ``b/|a| - margin`` (draw units, floored at 0 so that a fold never passes the centre).

    Args:
      centre_responses_WxF: dB responses of the variation centres.
      response_jacobians_WxFxK: ``G_w`` (dB per standard draw).
      centroids_WxF: each word's mean training response (dB).
      margin: how far inside the boundary folded draws stay, in standard draws.
    Returns:
      ``normals [W, W, K]`` and ``offsets [W, W]``; a word's plane with itself (and a pair whose
      boundary the draws cannot move across) never folds (normal 0, offset 0).
    """
    n_words, _, k = response_jacobians_WxFxK.shape
    mu = np.asarray(centroids_WxF, np.float64)
    normals = np.zeros((n_words, n_words, k))
    offsets = np.zeros((n_words, n_words))
    for w in range(n_words):
        for v in range(n_words):
            if v == w:
                continue
            towards_F = mu[v] - mu[w]
            a_K = 2.0 * response_jacobians_WxFxK[w].T @ towards_F
            b = mu[v] @ mu[v] - mu[w] @ mu[w] - 2.0 * centre_responses_WxF[w] @ towards_F
            norm = float(np.linalg.norm(a_K))
            if norm > 1e-9 * max(float(np.linalg.norm(towards_F)), 1e-12):
                normals[w, v] = a_K / norm
                offsets[w, v] = max(b / norm - margin, 0.0)
    return normals.astype(np.float32), offsets.astype(np.float32)


@functools.partial(jax.jit, static_argnames=("config", "layout", "steps"))
def _prototype_latents(params, config, start_WxL, scale_WxL, target_db_WxF, layout,
                       steps: int = 300, learning_rate: float = 0.02,
                       anchor_weight: float = PROTOTYPE_ANCHOR):
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
        mismatch = jnp.mean((response.magnitude_response_db(decoded, layout=layout)
                             - target_db_WxF) ** 2, axis=-1)
        drift = jnp.mean(((latent_WxL - start_WxL) / scale_WxL) ** 2, axis=-1)
        return jnp.sum(mismatch + anchor_weight * drift)

    optimizer = optax.adam(learning_rate)

    def step(carry, _):
        latent, state = carry
        updates, state = optimizer.update(jax.grad(loss)(latent), state)
        return (jnp.clip(optax.apply_updates(latent, updates), -0.999, 0.999), state), None

    (latent, _), _ = jax.lax.scan(step, (start_WxL, optimizer.init(start_WxL)), None, steps)
    return latent


def truncated_normal_std(cut: float) -> float:
    """Standard deviation of a standard normal truncated to ``[-cut, cut]``."""
    density = math.exp(-0.5 * cut * cut) / math.sqrt(2.0 * math.pi)
    mass = math.erf(cut / math.sqrt(2.0))
    return math.sqrt(1.0 - 2.0 * cut * density / mass)


def _shrunk_covariances(values_NxD, ids_N, n_words: int, prior_weight: float):
    """Per-word mean ``[W, D]`` and covariance ``[W, D, D]``, each shrunk toward the pooled
    within-word covariance by ``prior_weight`` pseudo-samples (a word seen once still gets one)."""
    means = np.stack([values_NxD[ids_N == w].mean(0) for w in range(n_words)])
    residual = values_NxD - means[ids_N]
    pooled = residual.T @ residual / max(len(values_NxD) - n_words, 1)
    covs = []
    for w in range(n_words):
        r = residual[ids_N == w]
        covs.append((r.T @ r + prior_weight * pooled) / (len(r) - 1 + prior_weight))
    return means, np.stack(covs)


def _sqrt_psd(matrix):
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def _split_jacobian(jacobian_BxL, rcond: float = 1e-3):
    """Pseudo-inverse ``[L, B]`` of a gain Jacobian, and the projector ``[L, L]`` onto the latent
    directions that leave the gains unchanged (to first order)."""
    u, s, vt = np.linalg.svd(jacobian_BxL, full_matrices=False)
    keep = s > rcond * max(s.max(), 1e-12)
    v = vt[keep].T
    return (v / s[keep]) @ u[:, keep].T, np.eye(jacobian_BxL.shape[1]) - v @ v.T


def fit_word_model(params, model_config: models.ModelConfig, dataset: EQDataset, *,
                   truncation: float = 1.5, prior_weight: float = 4.0,
                   target_ratio: float = 1.0, min_in_range: float = 0.99,
                   calibration_samples: int = 512, calibration_steps: int = 6,
                   max_reference: int = 4096, freq_q_scale: float = 0.5,
                   prototype: bool = True, fold_margin: float | None = 0.0,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """Fit the word model on training settings (after training).

    Per word ``w``: the centre ``c_w`` is the mean of its training latents, refined (with
    ``prototype``, the default) to the latent whose decoded response is nearest the word's mean
    training response in RMS dB; decoded, it is the word's *centre setting* (morph end points).
    Without the refinement the latent mean decodes to atypical frequencies and Q, and generated
    settings are recognised as their word less often (synthetic set: word accuracy 0.72 → 0.81
    and more). A variation is ``clip(v_w + spread_w @ z)``
    with ``z`` standard normal truncated at ``±truncation`` and

        ``spread_w = [J⁺ (D R D)^½ | t N C^½]``.

    Gains: ``J`` is the decoder's gain Jacobian (dB per latent unit) at ``c_w``, ``R`` the
    correlation of the word's data gains and ``D`` per-band scales, so that to first order the
    generated gains have the data's covariance (sampling the latent cloud directly would carry
    over correlations between bands that the decoder introduces). Frequency and Q: ``C`` is the
    word's latent covariance, ``N`` the projector onto the latent directions that leave the
    gains unchanged and ``t = freq_q_scale / std(z)``: at 1 they vary as the word's latents do;
    the default 0.5 keeps variations nearer the word's typical sound (they carry no word
    information, so full spread only blurs the word; calibration concerns gains).

    Calibration on decoded draws (fixed key), since the decoder is not linear:
    ``calibration_steps`` rounds set ``D`` per band so that std(generated gains) ÷ std(the
    word's data gains) is ``target_ratio``, and move the variation centre ``v_w`` (from ``c_w``)
    so that the mean generated gains are the data's mean gains. Then, while fewer than
    ``min_in_range`` of a word's generated gains lie within its data range ± 0.5 dB, its spread
    narrows: staying inside the word's box comes first.

    Fold (unless ``fold_margin`` is None): a word's crowd often holds settings nearer another
    word's average sound (real descriptors are noisy), and a Gaussian as wide as the crowd puts
    variations there too. The boundaries of SPEC §6's nearest-word classifier (training mean
    responses) are linearised into planes in each word's draw space (:func:`fold_planes`), and
    a draw past a plane is reflected back (:func:`fold_draws`) to stay ``fold_margin`` standard
    draws inside: variations keep the data's spread along the boundary and lose only what would
    sound like the other word. SAFE-DB warm/bright, held-out contributors, 19 splits
    (scripts/safe_cv.py): generated settings recognised as their word 0.878 of the time without
    the fold, as often as the contributors' own settings (0.878); 0.964 folded with a margin of
    0.5 at the data's full spread.

    Covariances are shrunk toward the pooled within-word ones by ``prior_weight``
    pseudo-settings, so a word seen once still gets a spread.

    Returns a dict of NumPy arrays (``W`` words, ``L`` latent dims, ``B`` bands, ``K = B + L``
    standard draws per variation, ``F`` reference grid): ``centres_WxL``,
    ``variation_centres_WxL``, the gains and dB responses they decode to
    (``centre_gains_WxB``, ``variation_centre_gains_WxB``, ``centre_responses_WxF``,
    ``variation_centre_responses_WxF``: blend targets), ``gain_pinv_WxLxB`` (``J⁺``),
    ``spread_WxLxK``, ``truncation`` (scalar), ``fold_normals_WxWxK`` and ``fold_offsets_WxW``
    (:func:`fold_planes`), ``counts_W``,
    ``global_centre_L``, ``global_spread_LxL`` (all training latents, for explore),
    ``reference_responses_RxF`` (training responses for novelty, at most ``max_reference``),
    ``data_gain_mean_WxB``, ``data_gain_std_WxB``, ``data_gain_low_WxB``,
    ``data_gain_high_WxB``, and what calibration reached on its own (folded) draws:
    ``calibration_ratio_WxB``, ``in_range_rate_W``.
    """
    layout, n_words = dataset.layout, len(dataset.vocabulary)
    counts = np.bincount(dataset.word_ids, minlength=n_words)
    if np.any(counts == 0):
        absent = [w for w, c in zip(dataset.vocabulary, counts) if c == 0]
        raise ValueError(f"cannot fit a word model: no training settings for {absent}; every "
                         f"word of the vocabulary needs at least one")
    if not truncation > 0:
        raise ValueError(f"truncation must be > 0, got {truncation}")
    if fold_margin is not None and not fold_margin >= 0:
        raise ValueError(f"fold_margin must be >= 0 (standard draws) or None (no fold), got "
                         f"{fold_margin}")
    ids = dataset.word_ids
    latents = encode_latents(params, model_config, dataset.settings, layout).astype(np.float64)
    centres, latent_covs = _shrunk_covariances(latents, ids, n_words, prior_weight)
    data_db = np.asarray(response.magnitude_response_db(dataset.settings, layout=layout))
    mean_db = np.stack([data_db[ids == w].mean(axis=0) for w in range(n_words)])
    if prototype:
        scale = np.sqrt(np.einsum("wll->wl", latent_covs)) + 1e-3
        centres = np.asarray(_prototype_latents(params, model_config,
                                                centres.astype(np.float32),
                                                scale.astype(np.float32),
                                                mean_db.astype(np.float32), layout),
                             np.float64)

    # ---- the word's data gains (dB)
    gains = dataset.settings[:, layout.gain_indices].astype(np.float64)
    gain_means, gain_covs = _shrunk_covariances(gains, ids, n_words, prior_weight)
    gain_scales = np.sqrt(np.einsum("wbb->wb", gain_covs))
    gain_corr = gain_covs / np.maximum(gain_scales[:, :, None] * gain_scales[:, None, :], 1e-12)
    groups = [gains[ids == w] for w in range(n_words)]
    data_std = np.stack([g.std(0, ddof=1) if len(g) > 1 else np.zeros(g.shape[1])
                         for g in groups])
    data_low = np.stack([g.min(0) for g in groups])
    data_high = np.stack([g.max(0) for g in groups])

    # ---- the spread: gain directions through the Jacobian, the rest from the latent cloud
    jacobians = np.asarray(_gain_jacobians(params, model_config, centres.astype(np.float32),
                                           layout), np.float64)
    pinvs, nulls = map(np.stack, zip(*(_split_jacobian(j) for j in jacobians)))
    z_std = truncated_normal_std(truncation)
    other_part = nulls @ np.stack([_sqrt_psd(c) for c in latent_covs]) / z_std

    def spreads(band_std_WxB, other_scale_W):
        gain_part = np.stack([pinvs[w] @ _sqrt_psd(band_std_WxB[w, :, None] * gain_corr[w]
                                                   * band_std_WxB[w, None, :])
                              for w in range(n_words)])
        return np.concatenate([gain_part, other_scale_W[:, None, None] * other_part],
                              axis=2).astype(np.float32)

    # ---- calibration on decoded draws
    z = np.broadcast_to(np.asarray(jax.random.truncated_normal(
        jax.random.key(seed), -truncation, truncation,
        (calibration_samples, layout.n_bands + latents.shape[1]))),
        (n_words, calibration_samples, layout.n_bands + latents.shape[1]))
    gain_target = np.where(data_std > 1e-3, data_std, np.nan) * target_ratio

    def measure(variation_centres, band_std, other_scale, z_WxMxK=z):
        drawn = np.asarray(_calibration_draws(
            params, model_config, variation_centres.astype(np.float32),
            spreads(band_std, other_scale), z_WxMxK, layout),
            np.float64)[..., layout.gain_indices]
        inside = ((drawn >= data_low[:, None] - 0.5)
                  & (drawn <= data_high[:, None] + 0.5)).mean(axis=(1, 2))
        return drawn.mean(axis=1), drawn.std(axis=1, ddof=1) / gain_target, inside

    def calibrate_spread(variation_centres, band_std, rounds):
        for _ in range(rounds):  # each band's spread, multiplicatively
            _, ratio, _ = measure(variation_centres, band_std, other_scale)
            band_std = band_std * np.clip(np.nan_to_num(1.0 / ratio, nan=1.0), 0.5, 2.0)
        return band_std

    other_scale = np.full(n_words, float(freq_q_scale))
    # to first order the draws have the data's std with this band_std
    band_std = calibrate_spread(centres, gain_scales / z_std, calibration_steps)
    # the decoder bends: move each variation centre so that the mean generated gains are the
    # data's (damped Gauss-Newton steps from the best centre so far, halved where they fail)
    best_centres, best_mean = centres.copy(), None
    best_error, step = np.full(n_words, np.inf), np.full(n_words, 0.7)
    variation_centres = centres
    for _ in range(calibration_steps):
        drawn_mean, _, _ = measure(variation_centres, band_std, other_scale)
        error = np.sqrt(np.mean((drawn_mean - gain_means) ** 2, axis=1))
        better = error < best_error
        best_error = np.where(better, error, best_error)
        best_centres = np.where(better[:, None], variation_centres, best_centres)
        best_mean = drawn_mean if best_mean is None else np.where(better[:, None], drawn_mean,
                                                                  best_mean)
        step = np.where(better, step, step / 2)
        variation_centres = np.clip(best_centres + step[:, None] * np.einsum(
            "wlb,wb->wl", pinvs, gain_means - best_mean), -1.0, 1.0)
    variation_centres = best_centres
    band_std = calibrate_spread(variation_centres, band_std, 2)
    drawn_mean, ratio, inside = measure(variation_centres, band_std, other_scale)
    for _ in range(20):  # stay inside the word's range where the spread is too wide
        narrow = inside < min_in_range
        if not narrow.any():
            break
        band_std = np.where(narrow[:, None], band_std * 0.93, band_std)
        other_scale = np.where(narrow, other_scale * 0.93, other_scale)
        drawn_mean, ratio, inside = measure(variation_centres, band_std, other_scale)

    # ---- the centres' and variation centres' settings: gains and dB responses
    decoded = decode_latents(params, model_config, np.concatenate([centres, variation_centres])
                             .astype(np.float32), layout)
    decoded_gains = decoded[:, layout.gain_indices].astype(np.float32)
    centre_responses = np.asarray(response.magnitude_response_db(decoded, layout=layout),
                                  np.float32)

    # ---- keep variations on their word's side of the boundaries with the other words
    spread = spreads(band_std, other_scale)
    if fold_margin is None:
        fold_normals, fold_offsets = _no_fold_planes(n_words, spread.shape[2])
    else:
        jacobians_db = np.asarray(_response_jacobians(
            params, model_config, variation_centres.astype(np.float32), layout))
        fold_normals, fold_offsets = fold_planes(
            centre_responses[n_words:].astype(np.float64),
            np.einsum("wfl,wlk->wfk", jacobians_db, spread), mean_db, float(fold_margin))
        # what calibration reached, as generated (folded)
        z_folded = np.asarray(jax.vmap(fold_draws)(z, fold_normals, fold_offsets))
        drawn_mean, ratio, inside = measure(variation_centres, band_std, other_scale, z_folded)

    # ---- what explore and novelty ranking need
    reference = dataset.settings
    if len(reference) > max_reference:
        pick = np.random.default_rng(seed).choice(len(reference), max_reference, replace=False)
        reference = reference[np.sort(pick)]
    reference_responses = np.asarray(response.magnitude_response_db(reference, layout=layout))
    global_cov = np.atleast_2d(np.cov(latents.T, bias=True))

    return {
        "centres_WxL": centres.astype(np.float32),
        "centre_gains_WxB": decoded_gains[:n_words],
        "variation_centres_WxL": variation_centres.astype(np.float32),
        "variation_centre_gains_WxB": decoded_gains[n_words:],
        "centre_responses_WxF": centre_responses[:n_words],
        "variation_centre_responses_WxF": centre_responses[n_words:],
        "gain_pinv_WxLxB": pinvs.astype(np.float32),
        "spread_WxLxK": spread,
        "truncation": np.float32(truncation),
        "fold_normals_WxWxK": fold_normals,
        "fold_offsets_WxW": fold_offsets,
        "counts_W": counts.astype(np.int32),
        "global_centre_L": latents.mean(axis=0).astype(np.float32),
        "global_spread_LxL": _sqrt_psd(global_cov).astype(np.float32),
        "reference_responses_RxF": reference_responses.astype(np.float32),
        "data_gain_mean_WxB": gain_means.astype(np.float32),
        "data_gain_std_WxB": data_std.astype(np.float32),
        "data_gain_low_WxB": data_low.astype(np.float32),
        "data_gain_high_WxB": data_high.astype(np.float32),
        "calibration_ratio_WxB": (ratio * target_ratio).astype(np.float32),
        "in_range_rate_W": inside.astype(np.float32),
    }

