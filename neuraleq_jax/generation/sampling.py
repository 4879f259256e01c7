"""Variations of words and blends: the batched functional core (:func:`generate`) and the
single-word latency path (:func:`word_variations`).

A word's variations are draws from its kernel density in latent space, decoded: pick one of the
word's encoded training latents at random, add Gaussian kernel noise (per-dimension scale
``kde_scale_WxL``, calibrated on validation data by :func:`fit_word_model`), clip to the tanh
range, decode. So they spread like the word's data in everything the latent holds (gains,
frequency and Q), yet are new settings: the noise moves each draw away from the training
setting it started from.

A blend's every variation is itself a blend (:func:`_blend_latents`): it draws one latent from
each word's density, and moves the row's blend centre (the latent whose decoded response is the
weighted mix of the words' mean-latent responses, :func:`_blend_centre`) by the weighted sum of
the draws' deviations from their words' latent means, scaled by ``1 / sqrt(Σ wᵢ²)``: a weighted
sum of independent deviations has ``Σ wᵢ²`` of their variance, and the scale gives it back the
spread of a single word's variations. One-hot rows are drawn as before, bit for bit
(:func:`_mixture_word` picks their one word).
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from neuraleq_jax.generation.common import (
    _as_float32,
    _blend_centre,
    _decode_physical,
    _in_latent_range,
    _latent_response,
    _select,
    apply_strength,
    blend_needs_correction,
    check_keys,
    check_word_weights,
)
from neuraleq_jax.model import networks
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout
from neuraleq_jax.sharding import large_batch_plan, over_rows, place

# keys of the word-model dict that generation reads
GENERATE_KEYS = ("kde_points_WxNxL", "counts_W", "kde_scale_WxL")


def _variation_keys(key, first, variations: int):
    """``[variations]`` keys of variations ``first … first + variations - 1``: variation ``v``
    draws from ``fold_in(key, v)``, so a row does not depend on how many are asked for."""
    return jax.vmap(jax.random.fold_in, (None, 0))(key, first + jnp.arange(variations))


def _unit_floats(bits_u32):
    """Floats in ``[0, 1)`` from uint32 bits, as ``jax.random.uniform`` makes them: the top 23
    bits become the mantissa of a float in ``[1, 2)``, minus 1."""
    mantissa = jax.lax.shift_right_logical(bits_u32, jnp.uint32(32 - 23)) | jnp.uint32(0x3F800000)
    return jax.lax.bitcast_convert_type(mantissa, jnp.float32) - 1.0


def _kernel_draw(word_model, word, key):
    """One latent ``[L]`` from word ``word``'s kernel density: a training latent picked uniformly
    and Gaussian noise of the word's kernel scale. ``word`` is a traced int32 scalar.

    The pick and the noise come from one ``random.bits`` call (the normals made from uniforms as
    ``jax.random.normal`` makes them): on a CPU each threefry call is a loop of its own, and on
    the single-setting path each one costs as much as the decoder."""
    points_WxNxL = jnp.asarray(word_model["kde_points_WxNxL"])
    count = jnp.asarray(word_model["counts_W"])[word]
    bits = jax.random.bits(key, (1 + points_WxNxL.shape[-1],), jnp.uint32)
    index = jnp.minimum(jnp.floor(_unit_floats(bits[0]) * count).astype(jnp.int32), count - 1)
    point_L = points_WxNxL[word, index]  # one row, not the word's whole [N, L] block
    lowest = np.nextafter(np.float32(-1.0), np.float32(0.0))
    uniform_L = jnp.maximum(lowest, _unit_floats(bits[1:]) * (1.0 - lowest) + lowest)
    noise_L = np.float32(np.sqrt(2.0)) * jax.lax.erf_inv(uniform_L)
    return _in_latent_range(point_L + jnp.asarray(word_model["kde_scale_WxL"])[word] * noise_L)


# floor(2**32 / golden ratio): consecutive multiples, taken mod 2**32, spread evenly over [0, 2**32)
_WEYL_STEP = 2_654_435_769


def _mixture_word(weights_W, key, index):
    """The word of variation ``index`` of a row with weights ``[W]`` and key ``key``: word ``w``
    with probability ``weights_W[w] / sum(weights_W)`` (zero weights never). The uniform number
    behind the choice is ``frac(offset + index / golden ratio)`` with ``offset`` uniform from the
    row's key: each one alone is uniform, and consecutive variations cover [0, 1) evenly, so 100
    variations of "0.7 a + 0.3 b" hold 70 ± 1 of ``a``, not a binomial count (whose noise would
    move the blend's mean response as much as the kernel noise does)."""
    bits = jnp.asarray(index).astype(jnp.uint32) * jnp.uint32(_WEYL_STEP) + jax.random.bits(
        key, dtype=jnp.uint32
    )
    uniform = (bits >> 8).astype(jnp.float32) * (1.0 / (1 << 24))
    cumulative_W = jnp.cumsum(weights_W)
    return jnp.argmax(cumulative_W > uniform * cumulative_W[-1]).astype(jnp.int32)


def word_variations(
    params,
    config: networks.ModelConfig,
    word_model,
    word,
    key,
    strength,
    first,
    variations: int,
    layout: EQLayout = DEFAULT_LAYOUT,
):
    """Settings ``[variations, P]`` of the single word with index ``word`` (a traced int32
    scalar): what :func:`generate` gives for a one-hot row, without the mixture's choice of a
    word. This is the single-setting latency path; call it inside ``jit``."""
    keys_V = _variation_keys(key, first, variations)
    latents_VxL = jax.vmap(lambda k: _kernel_draw(word_model, word, k))(keys_V)
    return apply_strength(_decode_physical(params, config, latents_VxL, layout), strength, layout)


def _variation_latents(word_model, weights_W, key, first, variations: int):
    """Latents ``[variations, L]`` of variations ``first … first + variations - 1`` of one
    weight vector, each drawn from one word of the row picked by :func:`_mixture_word` (for a
    one-hot row: its word, as :func:`word_variations` draws it)."""
    index_V = first + jnp.arange(variations)

    def one(key_v, index):
        return _kernel_draw(word_model, _mixture_word(weights_W, key, index), key_v)

    return jax.vmap(one)(_variation_keys(key, first, variations), index_V)


def _latent_means(word_model):
    """Each word's kernel density mean, the mean of its training latents: ``[W, L]``."""
    points_WxNxL = jnp.asarray(word_model["kde_points_WxNxL"])
    counts_W = jnp.asarray(word_model["counts_W"])
    mask_WxN = jnp.arange(points_WxNxL.shape[1])[None, :] < counts_W[:, None]
    total_WxL = jnp.einsum("wn,wnl->wl", mask_WxN.astype(points_WxNxL.dtype), points_WxNxL)
    return total_WxL / jnp.maximum(counts_W, 1)[:, None].astype(points_WxNxL.dtype)


def _blend_frame(params, config, layout, weights_W, means_WxL, mean_responses_WxF):
    """``(centre_L, fixed_LxL)`` of a blend row: its blend centre (:func:`_blend_centre`
    toward the weighted mix of ``mean_responses_WxF``) and the projector onto the latent
    directions that, to first order at the centre, move the response along the differences
    between its words' mean responses and the mix: how much of each word the blend holds."""
    weights_W = weights_W / jnp.sum(weights_W)
    centre_L = _blend_centre(params, config, layout, weights_W, means_WxL, mean_responses_WxF, True)
    jacobian_FxL = jax.jacfwd(functools.partial(_latent_response, params, config, layout))(centre_L)
    axes_WxF = jnp.where(
        (weights_W > 0)[:, None], mean_responses_WxF - weights_W @ mean_responses_WxF, 0.0
    )
    mixing_WxL = axes_WxF @ jacobian_FxL
    return centre_L, jnp.linalg.pinv(mixing_WxL, rtol=1e-4) @ mixing_WxL


def _blend_latents(word_model, weights_W, key, first, variations: int, frame, means_WxL):
    """Latents ``[variations, L]`` of a blend row around its ``frame`` (:func:`_blend_frame`):
    variation ``v`` draws one latent ``zᵢ`` from every word ``i`` with key
    ``fold_in(fold_in(key, v), i)``, and moves the centre by ``Σ wᵢ (zᵢ − meanᵢ) / sqrt(Σ wᵢ²)``
    (weights normalised) less its part along the fixed directions, clipped to the tanh range.

    The scale gives back a single word's spread (independent deviations, weighted and summed,
    hold ``Σ wᵢ²`` of it); the fixed part is left out because the weights, not the draw, say
    how much of each word a blend holds: a variation that moved along it would sound like one
    of the words instead of the blend."""
    centre_L, fixed_LxL = frame
    weights_W = weights_W / jnp.sum(weights_W)
    scale = jax.lax.rsqrt(jnp.sum(weights_W**2))
    words_W = jnp.arange(weights_W.shape[0], dtype=jnp.int32)

    def one(key_v):
        keys_W = jax.vmap(jax.random.fold_in, (None, 0))(key_v, words_W)
        draws_WxL = jax.vmap(lambda w, k: _kernel_draw(word_model, w, k))(words_W, keys_W)
        deviation_L = scale * (weights_W @ (draws_WxL - means_WxL))
        return _in_latent_range(centre_L + deviation_L - fixed_LxL @ deviation_L)

    return jax.vmap(one)(_variation_keys(key, first, variations))


def _row_latents(params, config, layout, word_model, weights_RxW, keys_R, first, variations):
    """Latents ``[R, variations, L]`` of blend rows: :func:`_blend_latents` around each row's
    blend centre, and exactly :func:`_variation_latents` for one-hot rows."""
    means_WxL = _latent_means(word_model)
    mean_responses_WxF = jax.vmap(functools.partial(_latent_response, params, config, layout))(
        means_WxL
    )

    def row(weights_W, key):
        frame = _blend_frame(params, config, layout, weights_W, means_WxL, mean_responses_WxF)
        blended = _blend_latents(word_model, weights_W, key, first, variations, frame, means_WxL)
        single = _variation_latents(word_model, weights_W, key, first, variations)
        one_word = jnp.max(weights_W) >= (1.0 - 1e-6) * jnp.sum(weights_W)
        return jnp.where(one_word, single, blended)

    return jax.vmap(row)(weights_RxW, keys_R)


@functools.partial(jax.jit, static_argnames=("config", "variations", "layout", "plan", "blends"))
def _generate(
    params,
    config,
    word_model,
    weights_BxW,
    keys_B,
    strength_B,
    first,
    variations,
    layout,
    plan=None,
    blends=True,
):
    def rows(shared, rows_R):
        params, word_model, first = shared
        weights_RxW, keys_R, strength_R = rows_R
        if blends:
            latents_RxVxL = _row_latents(
                params, config, layout, word_model, weights_RxW, keys_R, first, variations
            )
        else:  # only one-hot rows: no blend centre to solve for
            one = functools.partial(_variation_latents, word_model, variations=variations)
            latents_RxVxL = jax.vmap(one, (0, 0, None))(weights_RxW, keys_R, first)
        n_rows = latents_RxVxL.shape[0]
        settings = _decode_physical(
            params,
            config,
            latents_RxVxL.reshape(n_rows * variations, -1),
            layout,
            tile=None if plan is None else plan.decode_tile,
        ).reshape(n_rows, variations, layout.n_params)
        return apply_strength(settings, strength_R[:, None], layout)

    return over_rows(rows, (params, word_model, first), (weights_BxW, keys_B, strength_B), plan)


def blend_variations(
    params,
    config: networks.ModelConfig,
    word_model,
    weights_W,
    key,
    strength,
    *,
    first,
    variations: int,
    layout: EQLayout = DEFAULT_LAYOUT,
):
    """Settings ``[variations, P]`` of one weight row ``[W]`` with one key and a scalar strength:
    row 0 of :func:`generate`, on one device and without its host-side checks, so that it can
    be called inside ``jit`` with traced ``first`` and ``strength`` (as the serving executables
    do). ``word_model`` holds at least ``GENERATE_KEYS``."""
    return _generate(
        params,
        config,
        word_model,
        weights_W[None],
        key[None],
        jnp.asarray(strength)[None],
        first,
        variations,
        layout,
    )[0]


def generate(
    params,
    config: networks.ModelConfig,
    word_model,
    weights_BxW,
    keys_B,
    strength_B=1.0,
    *,
    variations: int = 1,
    first: int = 0,
    correct_blends: bool | None = None,
    layout: EQLayout = DEFAULT_LAYOUT,
):
    """Settings for a batch of word blends, ``variations`` per blend: draws from the mixture of
    the row's word densities (module docstring), decoded, then scaled by the row's strength.

    Args:
      weights_BxW: ``[B, W]`` non-negative weights over the vocabulary (one-hot = one word;
        see :func:`one_hot`); each row is normalised to sum 1.
      keys_B: ``[B]`` typed PRNG keys, one per row.
      strength_B: scalar or ``[B]`` gain strength (0 flat, 1 as generated).
      variations: settings per row; ``first`` is the index of the first one (variation ``v`` of
        a row always draws from ``fold_in(key, v)``, so large counts can be made in pieces).
      correct_blends: whether blend rows are drawn as blends (module docstring); ``None``
        (default): when any row mixes several words. ``False`` draws every row from the
        mixture of its words' densities (each variation one word, the former behaviour), and
        one-hot rows are drawn the same either way.
    Returns:
      ``[B, variations, P]`` physical settings (dB, Hz, Q), inside the layout's ranges.
    """
    chex.assert_rank(weights_BxW, 2)
    batch = weights_BxW.shape[0]
    check_word_weights(weights_BxW, word_model)
    check_keys(keys_B, batch)
    if int(variations) < 1:
        raise ValueError(f"variations must be >= 1, got {variations}")
    if correct_blends is None:
        correct_blends = blend_needs_correction(weights_BxW)
    plan = large_batch_plan(batch, int(variations))
    args = (
        params,
        _select(word_model, GENERATE_KEYS),
        _as_float32(weights_BxW),
        keys_B,
        _as_float32(strength_B, (batch,)),
    )
    params, word_model, weights_BxW, keys_B, strength_B = place(args, plan)
    return _generate(
        params,
        config,
        word_model,
        weights_BxW,
        keys_B,
        strength_B,
        np.int32(first),
        int(variations),
        layout,
        plan,
        bool(correct_blends),
    )
