"""Variations of words and blends: the batched functional core (:func:`generate`) and the
single-word latency path (:func:`word_variations`)."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from neuraleq_jax import models
from neuraleq_jax.generation.batching import _over_rows, _place, large_batch_plan
from neuraleq_jax.generation.common import (_as_float32, _blend_centre, _decode_physical,
                                            _in_latent_range, _select, apply_strength,
                                            blend_needs_correction)
from neuraleq_jax.paramspace import DEFAULT_LAYOUT, EQLayout

# keys of the word-model dict that generation reads
GENERATE_KEYS = ("variation_centres_WxL", "variation_centre_responses_WxF", "spread_WxLxK",
                 "truncation", "fold_normals_WxWxK", "fold_offsets_WxW")
FOLD_ROUNDS = 2


def _standard_draws(word_model, key, first, variations: int):
    """``[variations, K]`` truncated-normal draws; variation ``v`` draws from
    ``fold_in(key, first + v)``."""
    cut, k = word_model["truncation"], word_model["spread_WxLxK"].shape[-1]
    keys_V = jax.vmap(jax.random.fold_in, (None, 0))(key, first + jnp.arange(variations))
    return jax.vmap(lambda one: jax.random.truncated_normal(one, -cut, cut, (k,)))(keys_V)


def _deepest(excess_VxP):
    """Each row's largest entry, the others zeroed: a masked matmul applies it with fewer
    kernels than a gather on the single-setting path (ties between crossed planes have
    probability 0)."""
    return jnp.where(excess_VxP >= jnp.max(excess_VxP, axis=1, keepdims=True), excess_VxP, 0.0)


def fold_draws(z_VxK, normals_PxK, offsets_P, rounds: int = FOLD_ROUNDS):
    """Reflect standard draws ``[V, K]`` back across the planes ``n·z = offset`` they cross.

    Plane ``p`` (unit normal ``normals_PxK[p]``) bounds a word's side of its boundary with
    another word, in draw space. In each of ``rounds`` rounds a draw is mirrored across the plane
    it crosses deepest, ``z - 2 (n·z - offset) n``: one plane is folded exactly, and a draw past
    two similar planes is not thrown twice as far. Draws keep their spread along every
    direction parallel to the planes. A zero normal never folds (offsets are >= 0).
    Returns ``[V, K]``."""
    for _ in range(rounds):
        excess_VxP = jnp.maximum(z_VxK @ normals_PxK.T - offsets_P, 0.0)
        z_VxK = z_VxK - 2.0 * _deepest(excess_VxP) @ normals_PxK
    return z_VxK


def fold_blend_draws(z_VxK, weights_W, normals_WxWxK, offsets_WxW, rounds: int = FOLD_ROUNDS):
    """:func:`fold_draws` for a blend with weights ``[W]`` (summing to 1): across its words'
    planes against each word ``v``, mixed by weight, ``m_v = Σ_w weights_w n_wv`` at offset
    ``Σ_w weights_w offset_wv`` (a word's plane with itself is zero). Continuous in the weights,
    and exactly ``fold_draws(z, normals[w], offsets[w])`` for a one-hot row. Computed as two
    matmuls per round against all ``W²`` planes at once, which batches of rows share (mixing
    the planes per row first would leave a tiny matmul per row). Returns ``[V, K]``."""
    n_words = normals_WxWxK.shape[0]
    planes_PxK = normals_WxWxK.reshape(n_words * n_words, -1)
    offsets_W = weights_W @ offsets_WxW
    for _ in range(rounds):
        along_VxWxW = (z_VxK @ planes_PxK.T).reshape(-1, n_words, n_words)
        excess_VxW = jnp.maximum(jnp.einsum("w,xwv->xv", weights_W, along_VxWxW) - offsets_W,
                                 0.0)
        coefficients_VxP = (weights_W[None, :, None] * _deepest(excess_VxW)[:, None, :])
        z_VxK = z_VxK - 2.0 * coefficients_VxP.reshape(-1, n_words * n_words) @ planes_PxK
    return z_VxK


def word_variations(params, config: models.ModelConfig, word_model, word, key, strength,
                    first, variations: int, layout: EQLayout = DEFAULT_LAYOUT):
    """Settings ``[variations, P]`` of the single word with index ``word`` (a traced int32
    scalar): what :func:`generate` gives for a one-hot row, without the blend arithmetic over
    the whole vocabulary. This is the single-setting latency path (the facade compiles it with
    the parameters as constants); call it inside ``jit``."""
    z_VxK = fold_draws(_standard_draws(word_model, key, first, variations),
                       word_model["fold_normals_WxWxK"][word],
                       word_model["fold_offsets_WxW"][word])
    latents_VxL = _in_latent_range(word_model["variation_centres_WxL"][word]
                                   + z_VxK @ word_model["spread_WxLxK"][word].T)
    return apply_strength(_decode_physical(params, config, latents_VxL, layout), strength,
                          layout)


def _variation_latents(params, config, layout, word_model, weights_W, key, first,
                       variations: int, correct: bool):
    """Latents of variations ``first … first + variations - 1`` of one weight vector; variation
    ``v`` draws from ``fold_in(key, v)``, so a row does not depend on how many are asked for
    (padding and chunking are invisible)."""
    spreads = word_model["spread_WxLxK"]
    centre_L = _blend_centre(params, config, layout, weights_W,
                             word_model["variation_centres_WxL"],
                             word_model["variation_centre_responses_WxF"], correct)
    weights_W = weights_W / jnp.sum(weights_W)
    z_VxK = fold_blend_draws(_standard_draws(word_model, key, first, variations), weights_W,
                             word_model["fold_normals_WxWxK"], word_model["fold_offsets_WxW"])
    # a blend's spread: the same standard draw through the weighted mix of the words' spreads
    if variations < spreads.shape[0]:
        # few draws (large batches of rows): through every word's spread, then mixed: one
        # [V, K] x [K, W*L] matmul per row instead of building each row's [L, K] mix
        per_word_VxWxL = jnp.einsum("vk,wlk->vwl", z_VxK, spreads)
        return _in_latent_range(centre_L + jnp.einsum("w,vwl->vl", weights_W, per_word_VxWxL))
    spread_LxK = jnp.einsum("w,wij->ij", weights_W, spreads)
    return _in_latent_range(centre_L + z_VxK @ spread_LxK.T)


@functools.partial(jax.jit, static_argnames=("config", "variations", "layout", "correct",
                                             "plan"))
def _generate(params, config, word_model, weights_BxW, keys_B, strength_B, first, variations,
              layout, correct=True, plan=None):
    def rows(shared, rows_R):
        params, word_model, first = shared
        weights_RxW, keys_R, strength_R = rows_R
        one = functools.partial(_variation_latents, params, config, layout, word_model,
                                variations=variations, correct=correct)
        latents_RxVxL = jax.vmap(one, (0, 0, None))(weights_RxW, keys_R, first)
        n_rows = latents_RxVxL.shape[0]
        settings = _decode_physical(
            params, config, latents_RxVxL.reshape(n_rows * variations, -1), layout,
            tile=None if plan is None else plan.decode_tile,
        ).reshape(n_rows, variations, layout.n_params)
        return apply_strength(settings, strength_R[:, None], layout)

    return _over_rows(rows, (params, word_model, first), (weights_BxW, keys_B, strength_B),
                      plan)


def generate(params, config: models.ModelConfig, word_model, weights_BxW, keys_B,
             strength_B=1.0, *, variations: int = 1, first: int = 0,
             correct_blends: bool | None = None, layout: EQLayout = DEFAULT_LAYOUT):
    """Settings for a batch of word blends, ``variations`` per blend.

    Args:
      weights_BxW: ``[B, W]`` non-negative weights over the vocabulary (one-hot = one word;
        see :func:`one_hot`); each row is normalised to sum 1.
      keys_B: ``[B]`` typed PRNG keys, one per row.
      strength_B: scalar or ``[B]`` gain strength (0 flat, 1 as generated).
      variations: settings per row; ``first`` is the index of the first one (variation ``v`` of
        a row always draws from ``fold_in(key, v)``, so large counts can be made in pieces).
      correct_blends: move blends so that their decoded gains are the weighted mean of the
        words' (one extra decode per row); default: only if some row mixes several words.
    Returns:
      ``[B, variations, P]`` physical settings (dB, Hz, Q), inside the layout's ranges.
    """
    chex.assert_rank(weights_BxW, 2)
    batch = weights_BxW.shape[0]
    chex.assert_shape(keys_B, (batch,))
    if int(variations) < 1:
        raise ValueError(f"variations must be >= 1, got {variations}")
    if correct_blends is None:
        correct_blends = blend_needs_correction(weights_BxW)
    plan = large_batch_plan(batch, int(variations))
    args = (params, _select(word_model, GENERATE_KEYS), _as_float32(weights_BxW), keys_B,
            _as_float32(strength_B, (batch,)))
    params, word_model, weights_BxW, keys_B, strength_B = _place(args, plan)
    return _generate(params, config, word_model, weights_BxW, keys_B, strength_B,
                     np.int32(first), int(variations), layout, bool(correct_blends), plan)

