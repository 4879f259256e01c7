"""What generate, morph, explore and the word-model fit share: the word-model key check,
decoding latents into settings inside the ranges (and encoding settings), strength, and the
latent centre of a word blend."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from neuraleq_jax.model import networks, paramspace, response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout
from neuraleq_jax.sharding import map_tiles

BLEND_STEPS = 3


def _select(word_model, keys) -> dict:
    missing = [k for k in keys if k not in word_model]
    if missing:
        raise ValueError(
            f"word model lacks {missing}; refit it with generation.fit_word_model "
            f"(or rerun the training command that made it)"
        )
    return {k: word_model[k] for k in keys}


def check_word_weights(weights, word_model, name: str = "weights_BxW") -> None:
    """ValueError unless the last axis of ``weights`` has one entry per word of ``word_model``
    (a shorter row would silently leave the last words out)."""
    counts = word_model.get("counts_W", word_model.get("centres_WxL"))
    n_words = None if counts is None else np.shape(counts)[0]
    if n_words is not None and np.shape(weights)[-1:] != (n_words,):
        raise ValueError(
            f"{name} must have one weight per vocabulary word ({n_words} in this word model) "
            f"on its last axis; got shape {tuple(np.shape(weights))} (one_hot(ids, {n_words}) "
            f"makes rows for single words)"
        )


def check_keys(keys_B, batch: int) -> None:
    """ValueError unless ``keys_B`` is ``[batch]`` typed PRNG keys."""
    if not jax.dtypes.issubdtype(getattr(keys_B, "dtype", None), jax.dtypes.prng_key):
        raise ValueError(
            f"keys_B must be typed PRNG keys, jax.random.split(jax.random.key(seed), {batch}); "
            f"got {getattr(keys_B, 'dtype', type(keys_B).__name__)} of shape "
            f"{tuple(np.shape(keys_B))} (raw uint32 keys from jax.random.PRNGKey: wrap them "
            f"with jax.random.wrap_key_data)"
        )
    if keys_B.shape != (batch,):
        raise ValueError(f"keys_B must be [{batch}] keys, one per row; got {keys_B.shape}")


def _as_float32(x, shape=None):
    """float32 without an eager device op for host inputs (each one costs a dispatch)."""
    if isinstance(x, jax.Array):
        x = x.astype(jnp.float32)
        return x if shape is None else jnp.broadcast_to(x, shape)
    x = np.asarray(x, np.float32)
    return x if shape is None else np.broadcast_to(x, shape)


def _in_latent_range(latents):
    # the encoder's latents are tanh outputs: stay where the decoder was trained
    return jnp.clip(latents, -1.0, 1.0)


def _decode_physical(
    params, config: networks.ModelConfig, latent_NxL, layout: EQLayout, *, tile: int | None = None
):
    """Latents → physical settings, always inside the layout's ranges (``tile``: decode in row
    tiles of that many, see :func:`map_tiles`)."""

    def decode(latent_TxL):
        unit = networks.decode(params, config, latent_TxL)
        return paramspace.clip(paramspace.denormalize(unit, layout), layout)

    return decode(latent_NxL) if tile is None else map_tiles(decode, latent_NxL, tile)


def apply_strength(settings, strength, layout: EQLayout = DEFAULT_LAYOUT):
    """Scale the gains of physical settings ``[..., P]`` toward flat by ``strength`` (broadcast to
    the leading dims ``[...]``), in float32: :func:`paramspace.scale_gains`."""
    return paramspace.scale_gains(jnp.asarray(settings, jnp.float32), strength, layout)


def _latent_response(params, config: networks.ModelConfig, layout: EQLayout, latent_L):
    """The dB response ``[F]`` of one latent's decoded setting."""
    setting = _decode_physical(params, config, latent_L[None], layout)[0]
    return response.magnitude_response_db(setting, layout=layout)


def _blend_centre(
    params, config, layout, weights_W, centres_WxL, responses_WxF, match_responses: bool
):
    """The latent centre of a word blend: the weighted mean of the words' centres and, if
    ``match_responses``, ``BLEND_STEPS`` damped Gauss-Newton steps toward a decoded response equal to
    the weighted mean of the words' own responses (dB). The decoder is not linear, so the latent
    mean alone can sit closer to one word, or decode to atypical frequencies and Q. A single
    word is left exactly where it is (and callers skip the correction's cost for single words:
    see :func:`blend_needs_correction`)."""
    weights_W = weights_W / jnp.sum(weights_W)
    centre_L = weights_W @ centres_WxL
    if not match_responses:
        return centre_L
    target_F = weights_W @ responses_WxF

    respond = functools.partial(_latent_response, params, config, layout)

    def misfit(latent_L):
        return jnp.mean((target_F - respond(latent_L)) ** 2)

    def gauss_newton_step(_, corrected_L):
        jacobian_FxL = jax.jacfwd(respond)(corrected_L)
        residual_F = target_F - respond(corrected_L)
        gram_LxL = jacobian_FxL.T @ jacobian_FxL
        damping = 1e-2 * jnp.trace(gram_LxL) / gram_LxL.shape[0] + 1e-6
        step_L = jnp.linalg.solve(
            gram_LxL + damping * jnp.eye(gram_LxL.shape[0]), jacobian_FxL.T @ residual_F
        )
        # safeguard: keep the best of no step, the full step and shorter ones (the decoder is
        # not linear, and a full Gauss-Newton step can overshoot)
        candidates_CxL = _in_latent_range(
            corrected_L + jnp.array([0.0, 1.0, 0.5, 0.25])[:, None] * step_L
        )
        return candidates_CxL[jnp.argmin(jax.vmap(misfit)(candidates_CxL))]

    # a loop, not unrolled: XLA compiles the step (a Jacobian through decoder and response)
    # once instead of BLEND_STEPS times
    corrected_L = jax.lax.fori_loop(0, BLEND_STEPS, gauss_newton_step, centre_L)
    # a single word in a batch of blends stays bit-identical to its uncorrected self
    return jnp.where(jnp.max(weights_W) >= 1.0 - 1e-6, centre_L, corrected_L)


def blend_needs_correction(weights) -> bool:
    """Whether any row of host or concrete ``weights [..., W]`` mixes several words (a traced
    array counts as yes). Single words skip the blend correction's extra decode."""
    if isinstance(weights, jax.core.Tracer):
        return True
    return bool(np.any(np.count_nonzero(np.asarray(weights), axis=-1) > 1))


def bucket_size(n: int) -> int:
    """The smallest power of two >= ``n`` (the padded size compiled functions are served at)."""
    return 1 << max(int(n) - 1, 0).bit_length()


def one_hot(word_ids_B, n_words: int) -> np.ndarray:
    """Word ids ``[B]`` → float32 weight rows ``[B, n_words]``."""
    ids = np.asarray(word_ids_B, dtype=np.int64)
    if ids.size and not (ids.min() >= 0 and ids.max() < n_words):
        raise ValueError(f"word ids must lie in [0, {n_words}), got {ids.tolist()}")
    return np.eye(n_words, dtype=np.float32)[ids]


@functools.partial(jax.jit, static_argnames=("config", "layout"))
def _decode_jit(params, config, latents_NxL, layout):
    return _decode_physical(params, config, latents_NxL, layout)


def decode_latents(
    params,
    config: networks.ModelConfig,
    latents_NxL,
    layout: EQLayout = DEFAULT_LAYOUT,
    *,
    chunk: int = 8192,
) -> np.ndarray:
    """Latents ``[N, L]`` → physical settings ``[N, P]`` inside the ranges, in chunks."""
    latents_NxL = np.asarray(latents_NxL, np.float32)
    chex.assert_shape(latents_NxL, (None, config.latent_dim))
    return np.concatenate(
        [
            np.asarray(_decode_jit(params, config, latents_NxL[i : i + chunk], layout))
            for i in range(0, len(latents_NxL), chunk)
        ]
    )


def centre_settings(
    params, config: networks.ModelConfig, word_model, layout: EQLayout = DEFAULT_LAYOUT
) -> np.ndarray:
    """Each word's centre setting (its decoded latent centre): ``[W, P]`` physical."""
    return decode_latents(params, config, word_model["centres_WxL"], layout)


@functools.partial(jax.jit, static_argnames=("config",))
def _encode_latents(params, config, unit_NxP):
    return networks.encode(params, config, unit_NxP)[0]


def encode_latents(
    params,
    config: networks.ModelConfig,
    settings_NxP,
    layout: EQLayout = DEFAULT_LAYOUT,
    *,
    chunk: int = 8192,
) -> np.ndarray:
    """Physical settings ``[N, P]`` → latents ``[N, L]`` (deterministic encoder), in chunks."""
    unit = np.asarray(
        paramspace.normalize(np.asarray(settings_NxP, np.float32), layout), np.float32
    )
    parts = [
        np.asarray(_encode_latents(params, config, unit[i : i + chunk]))
        for i in range(0, len(unit), chunk)
    ]
    return np.concatenate(parts).astype(np.float32)
