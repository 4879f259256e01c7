"""Morphs: settings along the latent path between two word blends, evenly spaced in response."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp

from neuraleq_jax.generation.common import (
    _as_float32,
    _blend_centre,
    _decode_physical,
    _select,
    blend_needs_correction,
    check_word_weights,
)
from neuraleq_jax.model import networks, response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout

# keys of the word-model dict that a morph reads
MORPH_KEYS = ("centres_WxL", "centre_responses_WxF")


def _morph_one(
    params,
    config,
    word_model,
    weights_a_W,
    weights_b_W,
    alphas_S,
    reparametrize,
    dense,
    layout,
    correct_blends,
):
    def centre(weights_W):
        return _blend_centre(
            params,
            config,
            layout,
            weights_W,
            word_model["centres_WxL"],
            word_model["centre_responses_WxF"],
            correct_blends,
        )

    # both ends in one vmapped pass: the blend correction is compiled once, not per end
    start_L, end_L = jax.vmap(centre)(jnp.stack([weights_a_W, weights_b_W]))

    def settings_at(alpha_N):
        latents = start_L + alpha_N[:, None] * (end_L - start_L)
        return _decode_physical(params, config, latents, layout)

    if reparametrize:
        # equal latent steps need not give equal response steps: walk a dense path, measure its
        # length in RMS dB, and place the requested fractions at equal response arc length
        grid_D = jnp.linspace(0.0, 1.0, dense)
        responses_DxF = response.magnitude_response_db(settings_at(grid_D), layout=layout)
        alphas_S = response.equal_step_positions(alphas_S, grid_D, responses_DxF)
    return settings_at(alphas_S)


@functools.partial(
    jax.jit, static_argnames=("config", "reparametrize", "dense", "layout", "correct_blends")
)
def _morph(
    params,
    config,
    word_model,
    weights_a,
    weights_b,
    alphas_S,
    reparametrize,
    dense,
    layout,
    correct_blends=True,
):
    one = functools.partial(
        _morph_one,
        params,
        config,
        word_model,
        reparametrize=reparametrize,
        dense=dense,
        layout=layout,
        correct_blends=correct_blends,
    )
    if weights_a.ndim == 1:
        return one(weights_a, weights_b, alphas_S)
    return jax.vmap(one, (0, 0, None))(weights_a, weights_b, alphas_S)


def morph(
    params,
    config: networks.ModelConfig,
    word_model,
    weights_a,
    weights_b,
    alphas_S,
    *,
    reparametrize: bool = True,
    dense: int = 129,
    correct_blends: bool | None = None,
    layout: EQLayout = DEFAULT_LAYOUT,
):
    """Settings along the path between two word blends (their latent centres; for a blend of
    several words corrected as in :func:`generate`).

    Args:
      weights_a, weights_b: ``[W]`` (one pair) or ``[B, W]`` (a batch of pairs) word weights.
      alphas_S: ``[S]`` positions in ``[0, 1]``; 0 is ``a``'s centre setting, 1 is ``b``'s.
      reparametrize: if True (default) ``alpha`` is the fraction of the path's length measured
        in RMS dB of the response (from ``dense`` points), so equal alpha steps give equal
        response steps; if False it is the fraction of the latent segment.
    Returns:
      ``[S, P]`` (or ``[B, S, P]``) physical settings, inside the layout's ranges.
    """
    weights_a, weights_b, alphas_S = map(_as_float32, (weights_a, weights_b, alphas_S))
    chex.assert_equal_shape([weights_a, weights_b])
    check_word_weights(weights_a, word_model, "weights_a")
    chex.assert_rank(alphas_S, 1)
    if dense < 2:
        raise ValueError(f"dense must be >= 2 points, got {dense}")
    if correct_blends is None:
        correct_blends = blend_needs_correction(weights_a) or blend_needs_correction(weights_b)
    return _morph(
        params,
        config,
        _select(word_model, MORPH_KEYS),
        weights_a,
        weights_b,
        alphas_S,
        bool(reparametrize),
        int(dense),
        layout,
        bool(correct_blends),
    )
