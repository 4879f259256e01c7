"""The functional generation core: word models, generate, morph, explore, strength.

Everything here is a pure function of ``(params, model_config, word_model, inputs, key)``.
A *word model* is a dict of NumPy arrays fitted once after training (:func:`fit_word_model`)
and stored in the checkpoint bundle; it holds, per word, the latent centre, where variations are
centred and a linear spread of truncated-normal draws (calibrated so that generated gains vary
like the word's data), with planes that fold draws back from the other words' side of the
nearest-word boundaries, plus what exploration needs (a Gaussian over all training latents and the
dB responses of training settings for novelty ranking).

Sections: generate (variations of words and blends), large batches (row tiles, devices),
morph (response-evenly spaced paths), explore (chunked, streaming, novelty top-k), fitting the
word model.

Words enter as weight vectors over the vocabulary (``[W]`` or ``[B, W]``): a one-hot row is one
word, several non-zero entries blend words (see :mod:`neuraleq_jax.compound`). Weights are
normalised to sum 1 inside every function.

The device-side work is jit-compiled; the public functions are thin wrappers that check shapes
and pass only the word-model arrays each computation needs, so a large novelty reference never
travels with a call that does not use it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from neuraleq_jax import models, paramspace, response
from neuraleq_jax.data import EQDataset
from neuraleq_jax.paramspace import DEFAULT_LAYOUT, EQLayout

# keys of the word-model dict that each computation reads
GENERATE_KEYS = ("variation_centres_WxL", "variation_centre_responses_WxF", "spread_WxLxK",
                 "truncation", "fold_normals_WxWxK", "fold_offsets_WxW")
FOLD_ROUNDS = 2
MORPH_KEYS = ("centres_WxL", "centre_responses_WxF")
BLEND_STEPS = 3
PROTOTYPE_ANCHOR = 0.002
EXPLORE_KEYS = ("global_centre_L", "global_spread_LxL")
NOVELTY_KEYS = EXPLORE_KEYS + ("reference_responses_RxF",)


def _no_fold_planes(n_words: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Fold planes that never fold: zero normals ``[W, W, K]`` (and zero offsets ``[W, W]``)."""
    return np.zeros((n_words, n_words, k), np.float32), np.zeros((n_words, n_words), np.float32)


def with_fold_defaults(word_model) -> dict:
    """``word_model`` with fold planes that never fold added where it has none (word models
    fitted before folding existed generate exactly as they did)."""
    if "fold_normals_WxWxK" in word_model or "spread_WxLxK" not in word_model:
        return word_model
    n_words, _, k = np.shape(word_model["spread_WxLxK"])
    normals, offsets = _no_fold_planes(n_words, k)
    return {**word_model, "fold_normals_WxWxK": normals, "fold_offsets_WxW": offsets}


def _select(word_model, keys) -> dict:
    word_model = with_fold_defaults(word_model)
    missing = [k for k in keys if k not in word_model]
    if missing:
        raise ValueError(f"word model lacks {missing}; refit it with generation.fit_word_model")
    return {k: word_model[k] for k in keys}


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


def _decode_physical(params, config: models.ModelConfig, latent_NxL, layout: EQLayout, *,
                     tile: int | None = None):
    """Latents → physical settings, always inside the layout's ranges (``tile``: decode in row
    tiles of that many, see :func:`_map_tiles`)."""
    def decode(latent_TxL):
        unit = models.decode(params, config, latent_TxL)
        return paramspace.clip(paramspace.denormalize(unit, layout), layout)

    return decode(latent_NxL) if tile is None else _map_tiles(decode, latent_NxL, tile)


def apply_strength(settings, strength, layout: EQLayout = DEFAULT_LAYOUT):
    """Scale the gains of physical settings ``[..., P]`` toward flat by ``strength`` (broadcast to
    the leading dims ``[...]``): 0 gives 0 dB gains, 1 leaves them, > 1 exaggerates (clipped to the
    gain range). Frequencies and Q are unchanged."""
    settings = jnp.asarray(settings, jnp.float32)
    strength = jnp.asarray(strength, jnp.float32)[..., None]
    gain_mask = np.zeros(layout.n_params, bool)
    gain_mask[layout.gain_indices] = True
    return paramspace.clip(jnp.where(gain_mask, settings * strength, settings), layout)


def _blend_centre(params, config, layout, weights_W, centres_WxL, responses_WxF,
                  correct: bool):
    """The latent centre of a word blend: the weighted mean of the words' centres and, if
    ``correct``, ``BLEND_STEPS`` damped Gauss-Newton steps toward a decoded response equal to
    the weighted mean of the words' own responses (dB). The decoder is not linear, so the latent
    mean alone can sit closer to one word, or decode to atypical frequencies and Q. A single
    word is left exactly where it is (and callers skip the correction's cost for single words:
    see :func:`blend_needs_correction`)."""
    weights_W = weights_W / jnp.sum(weights_W)
    centre_L = weights_W @ centres_WxL
    if not correct:
        return centre_L
    target_F = weights_W @ responses_WxF

    def respond(latent_L):
        setting = _decode_physical(params, config, latent_L[None], layout)[0]
        return response.magnitude_response_db(setting, layout=layout)

    def misfit(latent_L):
        return jnp.mean((target_F - respond(latent_L)) ** 2)

    corrected_L = centre_L
    for _ in range(BLEND_STEPS):
        jacobian_FxL = jax.jacfwd(respond)(corrected_L)
        residual_F = target_F - respond(corrected_L)
        gram_LxL = jacobian_FxL.T @ jacobian_FxL
        damping = 1e-2 * jnp.trace(gram_LxL) / gram_LxL.shape[0] + 1e-6
        step_L = jnp.linalg.solve(gram_LxL + damping * jnp.eye(gram_LxL.shape[0]),
                                  jacobian_FxL.T @ residual_F)
        # safeguard: keep the best of no step, the full step and shorter ones (the decoder is
        # not linear, and a full Gauss-Newton step can overshoot)
        candidates_CxL = _in_latent_range(
            corrected_L + jnp.array([0.0, 1.0, 0.5, 0.25])[:, None] * step_L)
        corrected_L = candidates_CxL[jnp.argmin(jax.vmap(misfit)(candidates_CxL))]
    # a single word in a batch of blends stays bit-identical to its uncorrected self
    return jnp.where(jnp.max(weights_W) >= 1.0 - 1e-6, centre_L, corrected_L)


def blend_needs_correction(weights) -> bool:
    """Whether any row of host or concrete ``weights [..., W]`` mixes several words (a traced
    array counts as yes). Single words skip the blend correction's extra decode."""
    if isinstance(weights, jax.core.Tracer):
        return True
    return bool(np.any(np.count_nonzero(np.asarray(weights), axis=-1) > 1))


# --------------------------------------------------------------------------- generate

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


def bucket_size(n: int) -> int:
    """The smallest power of two >= ``n`` (the padded size compiled functions are served at)."""
    return 1 << max(int(n) - 1, 0).bit_length()


def one_hot(word_ids_B, n_words: int) -> np.ndarray:
    """Word ids ``[B]`` → float32 weight rows ``[B, n_words]``."""
    return np.eye(n_words, dtype=np.float32)[np.asarray(word_ids_B, dtype=np.int64)]


# --------------------------------------------------------------------------- large batches
#
# Decoding a large batch in one piece streams every layer's [N, 256] activations through main
# memory, and the decoder's matmuls then run at memory speed. From two tiles' worth on, a
# CPU cuts the rows into tiles that one lax.map walks through, so a tile's activations stay in
# cache (about twice the throughput; XLA's intra-op threads still use every core). Accelerators
# instead split the rows across the local devices, one tile per device: they want the whole
# batch in each matmul. CPU "devices" (``jax_num_cpu_devices``) share the same cores, bring no
# speed, and some programs split across them deadlock in XLA's CPU runtime, so a CPU batch stays
# on one device. Small batches keep the plain path, so serving latency is untouched.

CPU_TILE = 2_048             # settings per tile on a CPU: [2048, 256] float32 is 2 MB, one L2
LARGE_BATCH = 4_096          # CPU: settings per call from which rows are tiled (two tiles)
ACCELERATOR_SPLIT = 65_536   # accelerators: settings per call from which rows are split


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """How a large batch is laid out (hashable: a static jit argument).

    Attributes:
      mesh: a 1-D ``data`` mesh over the local devices, or None for one device.
      row_tile: rows (of ``row_size`` settings each) per tile.
      decode_tile: settings per decoder tile when one row alone is larger than a tile, else
        None.
    """

    mesh: Mesh | None
    row_tile: int
    decode_tile: int | None


def large_batch_plan(n_rows: int, row_size: int = 1, *, devices=None) -> BatchPlan | None:
    """How to lay out ``n_rows`` rows of ``row_size`` settings each, or None for the plain path.

    CPU: from ``LARGE_BATCH`` settings on, whole rows in tiles of about ``CPU_TILE`` settings
    (a row larger than that is decoded in tiles inside). Accelerators: from ``ACCELERATOR_SPLIT``
    settings on, rows split across the local devices, one tile per device; one device keeps the
    plain path.
    """
    n_rows, row_size = int(n_rows), int(row_size)
    devices = list(jax.local_devices() if devices is None else devices)
    if devices[0].platform == "cpu":
        if n_rows * row_size < LARGE_BATCH:
            return None
        return BatchPlan(mesh=None, row_tile=max(1, min(n_rows, CPU_TILE // row_size)),
                         decode_tile=CPU_TILE if row_size > CPU_TILE else None)
    if n_rows * row_size < ACCELERATOR_SPLIT or n_rows < len(devices) or len(devices) < 2:
        return None
    return BatchPlan(mesh=Mesh(np.array(devices), ("data",)),
                     row_tile=-(-n_rows // len(devices)), decode_tile=None)


def _take_rows(tree, n_rows: int, padded: int):
    """Every array of ``tree`` padded along axis 0 from ``n_rows`` to ``padded`` rows by
    repeating the last row (a gather, which also works for typed PRNG keys)."""
    if padded == n_rows:
        return tree
    index = jnp.minimum(jnp.arange(padded), n_rows - 1)
    return jax.tree_util.tree_map(lambda x: x[index], tree)


def _map_tiles(fn, rows, tile: int):
    """``fn`` over the leading axis of the pytree ``rows`` in tiles of ``tile`` rows (one
    ``lax.map``; the last tile is padded and the padding dropped). Returns ``fn``'s pytree."""
    n_rows = jax.tree_util.tree_leaves(rows)[0].shape[0]
    if n_rows <= tile:
        return fn(rows)
    padded = -(-n_rows // tile) * tile
    tiles = jax.tree_util.tree_map(lambda x: x.reshape((-1, tile) + x.shape[1:]),
                                   _take_rows(rows, n_rows, padded))
    out = jax.lax.map(fn, tiles)
    return jax.tree_util.tree_map(lambda y: y.reshape((padded,) + y.shape[2:])[:n_rows], out)


def _over_rows(fn, shared, rows, plan: BatchPlan | None):
    """``fn(shared, rows)`` for the pytree ``rows`` laid out by ``plan``: in row tiles, and split
    across the plan's devices (``shared`` replicated). ``plan`` None: one plain call."""
    if plan is None:
        return fn(shared, rows)

    def local(shared, rows):
        return _map_tiles(functools.partial(fn, shared), rows, plan.row_tile)

    if plan.mesh is None:
        return local(shared, rows)
    n_rows, n_devices = jax.tree_util.tree_leaves(rows)[0].shape[0], plan.mesh.size
    padded = -(-n_rows // n_devices) * n_devices
    out = jax.shard_map(local, mesh=plan.mesh, in_specs=(P(), P("data")),
                        out_specs=P("data"))(shared, _take_rows(rows, n_rows, padded))
    return jax.tree_util.tree_map(lambda y: y[:n_rows], out)


def _place(arrays, plan: BatchPlan | None):
    """Arrays replicated on the plan's devices (a multi-device computation cannot take inputs
    committed to one device); unchanged without a mesh."""
    if plan is None or plan.mesh is None:
        return arrays
    return jax.device_put(arrays, NamedSharding(plan.mesh, P()))


# --------------------------------------------------------------------------- morph

def _morph_one(params, config, word_model, weights_a_W, weights_b_W, alphas_S, reparametrize,
               dense, layout, correct):
    def centre(weights_W):
        return _blend_centre(params, config, layout, weights_W, word_model["centres_WxL"],
                             word_model["centre_responses_WxF"], correct)

    start_L, end_L = centre(weights_a_W), centre(weights_b_W)

    def settings_at(alpha_N):
        latents = start_L + alpha_N[:, None] * (end_L - start_L)
        return _decode_physical(params, config, latents, layout)

    if reparametrize:
        # equal latent steps need not give equal response steps: walk a dense path, measure its
        # length in RMS dB, and place the requested fractions at equal response arc length
        grid_D = jnp.linspace(0.0, 1.0, dense)
        responses_DxF = response.magnitude_response_db(settings_at(grid_D), layout=layout)
        step_D1 = response.rms_db(responses_DxF[1:], responses_DxF[:-1])
        arc_D = jnp.concatenate([jnp.zeros(1), jnp.cumsum(step_D1)])
        total = arc_D[-1]
        arc_D = jnp.where(total > 0, arc_D / jnp.where(total > 0, total, 1.0), grid_D)
        alphas_S = jnp.interp(alphas_S, arc_D, grid_D)
    return settings_at(alphas_S)


@functools.partial(jax.jit, static_argnames=("config", "reparametrize", "dense", "layout",
                                             "correct"))
def _morph(params, config, word_model, weights_a, weights_b, alphas_S, reparametrize, dense,
           layout, correct=True):
    one = functools.partial(_morph_one, params, config, word_model,
                            reparametrize=reparametrize, dense=dense, layout=layout,
                            correct=correct)
    if weights_a.ndim == 1:
        return one(weights_a, weights_b, alphas_S)
    return jax.vmap(one, (0, 0, None))(weights_a, weights_b, alphas_S)


def morph(params, config: models.ModelConfig, word_model, weights_a, weights_b, alphas_S, *,
          reparametrize: bool = True, dense: int = 129, correct_blends: bool | None = None,
          layout: EQLayout = DEFAULT_LAYOUT):
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
    chex.assert_rank(alphas_S, 1)
    if dense < 2:
        raise ValueError(f"dense must be >= 2 points, got {dense}")
    if correct_blends is None:
        correct_blends = blend_needs_correction(weights_a) or blend_needs_correction(weights_b)
    return _morph(params, config, _select(word_model, MORPH_KEYS), weights_a, weights_b,
                  alphas_S, bool(reparametrize), int(dense), layout, bool(correct_blends))


@functools.partial(jax.jit, static_argnames=("config", "layout"))
def _decode_jit(params, config, latents_NxL, layout):
    return _decode_physical(params, config, latents_NxL, layout)


def decode_latents(params, config: models.ModelConfig, latents_NxL,
                   layout: EQLayout = DEFAULT_LAYOUT, *, chunk: int = 8192) -> np.ndarray:
    """Latents ``[N, L]`` → physical settings ``[N, P]`` inside the ranges, in chunks."""
    latents_NxL = np.asarray(latents_NxL, np.float32)
    chex.assert_shape(latents_NxL, (None, config.latent_dim))
    return np.concatenate([np.asarray(_decode_jit(params, config, latents_NxL[i:i + chunk],
                                                  layout))
                           for i in range(0, len(latents_NxL), chunk)])


def centre_settings(params, config: models.ModelConfig, word_model,
                    layout: EQLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """Each word's centre setting (its decoded latent centre): ``[W, P]`` physical."""
    return decode_latents(params, config, word_model["centres_WxL"], layout)


# --------------------------------------------------------------------------- explore

def _explore_latents(word_model, key, start, chunk: int, temperature):
    """Latents for sample indices ``start … start + chunk - 1``; sample ``i`` draws from
    ``fold_in(key, i)``, so results do not depend on the chunk size."""
    return _explore_latents_at(word_model, key, start + jnp.arange(chunk), temperature)


def _explore_latents_at(word_model, key, index_C, temperature):
    """Latents ``[C, L]`` of the sample indices ``index_C``."""
    centre_L, spread_LxL = word_model["global_centre_L"], word_model["global_spread_LxL"]
    z_CxL = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i),
                                                 centre_L.shape))(index_C)
    return _in_latent_range(centre_L + temperature * z_CxL @ spread_LxL.T)


@functools.partial(jax.jit, static_argnames=("config", "chunk", "layout", "plan"))
def _explore_chunk(params, config, word_model, key, start, temperature, chunk, layout,
                   plan=None):
    def tile(shared, index_T):
        # sampling inside the tile too: its latents never leave the cache either
        params, word_model, key, temperature = shared
        return _decode_physical(params, config,
                                _explore_latents_at(word_model, key, index_T, temperature),
                                layout)

    return _over_rows(tile, (params, word_model, key, temperature), start + jnp.arange(chunk),
                      plan)


def _check_explore_args(n: int, chunk: int | None, temperature: float):
    if not 1 <= int(n) < 2 ** 31:  # sample indices are int32 (one fold_in per sample)
        raise ValueError(f"n (number of samples) must be in [1, 2**31), got {n}")
    if chunk is not None and int(chunk) < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be finite and >= 0, got {temperature}")


# settings per compiled call when streaming: 4 MB on the host from a CPU; an accelerator gets
# more per call, so that dispatch and the copy to the host stay small beside the decoding
EXPLORE_CHUNK = {"cpu": 65_536}
ACCELERATOR_EXPLORE_CHUNK = 1 << 20


def default_explore_chunk() -> int:
    """The chunk ``explore_chunks`` uses when none is given, for the default backend."""
    return EXPLORE_CHUNK.get(jax.default_backend(), ACCELERATOR_EXPLORE_CHUNK)


def explore_chunks(params, config: models.ModelConfig, word_model, key, n: int, *,
                   chunk: int | None = None, temperature: float = 1.0,
                   layout: EQLayout = DEFAULT_LAYOUT) -> Iterator[np.ndarray]:
    """Stream ``n`` explored settings as host arrays of at most ``[chunk, P]``
    (``chunk`` None: :func:`default_explore_chunk`).

    Latents are drawn from a Gaussian fitted to all training latents (``temperature`` scales its
    spread) and decoded ``chunk`` at a time, so memory stays bounded for any ``n``; one compiled
    function serves every chunk. A large chunk is decoded in cache-sized tiles and split across
    the local devices (see *large batches* above); results do not depend on either.
    """
    _check_explore_args(n, chunk, temperature)
    n = int(n)
    # a power-of-two chunk for small n: few compiled shapes; the surplus samples are dropped
    chunk = min(default_explore_chunk() if chunk is None else int(chunk), bucket_size(n))
    yield from explore_range(params, config, word_model, key, 0, n, chunk=chunk,
                             temperature=temperature, layout=layout)


def explore(params, config: models.ModelConfig, word_model, key, n: int, *,
            chunk: int | None = None, temperature: float = 1.0,
            layout: EQLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """``n`` explored settings ``[n, P]`` (see :func:`explore_chunks`), gathered on the host.

    The result alone is ``60 n`` bytes (600 MB for 10M settings); it is filled chunk by chunk,
    never held twice. To look at more settings than fit in memory, consume
    :func:`explore_chunks` or rank on the device with :func:`explore_novel`.
    """
    _check_explore_args(n, chunk, temperature)
    settings = np.empty((int(n), layout.n_params), np.float32)
    done = 0
    for part in explore_chunks(params, config, word_model, key, n, chunk=chunk,
                               temperature=temperature, layout=layout):
        settings[done:done + len(part)] = part
        done += len(part)
    return settings


def novelty_db(settings_NxP, reference_responses_RxF, layout: EQLayout = DEFAULT_LAYOUT):
    """RMS dB (reference grid) from each setting's response to the nearest reference response.

    ``[N, P]`` settings, ``[R, F]`` responses → ``[N]`` dB.
    """
    responses_NxF = response.magnitude_response_db(settings_NxP, layout=layout)
    # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: one matmul instead of an [N, R, F] tensor
    sq_N = jnp.sum(responses_NxF ** 2, axis=-1)
    sq_R = jnp.sum(reference_responses_RxF ** 2, axis=-1)
    cross_NxR = responses_NxF @ reference_responses_RxF.T
    nearest_N = jnp.min(sq_N[:, None] + sq_R[None, :] - 2.0 * cross_NxR, axis=-1)
    return jnp.sqrt(jnp.maximum(nearest_N, 0.0) / responses_NxF.shape[-1])


@functools.partial(jax.jit, static_argnames=("config", "n", "k", "chunk", "layout"))
def _explore_novel(params, config, word_model, key, temperature, n, k, chunk, layout):
    n_chunks = -(-n // chunk)

    def body(carry, chunk_index):
        best_scores_K, best_settings_KxP = carry
        start = chunk_index * chunk
        settings = _decode_physical(
            params, config, _explore_latents(word_model, key, start, chunk, temperature), layout)
        scores = novelty_db(settings, word_model["reference_responses_RxF"], layout)
        valid = (start + jnp.arange(chunk) < n) & jnp.isfinite(scores) & jnp.all(
            jnp.isfinite(settings), axis=-1)
        scores = jnp.where(valid, scores, -jnp.inf)
        # running top-k: merge this chunk's scores with the best so far
        pooled_scores = jnp.concatenate([best_scores_K, scores])
        pooled_settings = jnp.concatenate([best_settings_KxP, settings])
        top_scores, top_index = jax.lax.top_k(pooled_scores, k)
        return (top_scores, pooled_settings[top_index]), None

    init = (jnp.full((k,), -jnp.inf), jnp.zeros((k, layout.n_params), jnp.float32))
    (scores_K, settings_KxP), _ = jax.lax.scan(body, init, jnp.arange(n_chunks))
    return settings_KxP, scores_K


def explore_novel(params, config: models.ModelConfig, word_model, key, n: int, k: int, *,
                  chunk: int = 8192, temperature: float = 1.0,
                  layout: EQLayout = DEFAULT_LAYOUT):
    """The ``k`` most novel of ``n`` explored settings, in one compiled scan over chunks.

    Novelty is :func:`novelty_db` against the training settings' responses stored in the word
    model. Memory is bounded by ``chunk`` (a running top-k is carried across chunks).

    Returns:
      ``(settings [k, P], novelty_db [k])``, most novel first; every setting is finite and
      inside the layout's ranges.
    """
    _check_explore_args(n, chunk, temperature)
    if not 1 <= int(k) <= int(n):
        raise ValueError(f"k must be in [1, n={n}], got {k}")
    chunk = min(int(chunk), int(n))
    return _explore_novel(params, config, _select(word_model, NOVELTY_KEYS), key,
                          np.float32(temperature), int(n), int(k), chunk, layout)


# explore by row index: a store resumes at any chunk and several processes each take a share of
# the rows; row i is still the draw of fold_in(key, i), so a range equals that slice of explore

def explore_range(params, config: models.ModelConfig, word_model, key, start: int, stop: int,
                  *, chunk: int | None = None, temperature: float = 1.0,
                  layout: EQLayout = DEFAULT_LAYOUT) -> Iterator[np.ndarray]:
    """Stream the explored settings of rows ``start … stop - 1`` as host arrays of at most
    ``[chunk, P]``, the first starting at row ``start`` (``chunk`` None:
    :func:`default_explore_chunk`, or less for a short range). Row ``i`` equals row ``i`` of
    :func:`explore` with the same key; memory and devices as in :func:`explore_chunks`.
    """
    start, stop = int(start), int(stop)
    if not 0 <= start < stop <= 2 ** 31 - 1:
        raise ValueError(f"need 0 <= start < stop < 2**31 (rows), got start={start}, stop={stop}")
    _check_explore_args(stop, chunk, temperature)
    # a given chunk is kept even for a short range, so every chunk of a store is decoded by the
    # same compiled program, whichever range it falls in
    chunk = (min(default_explore_chunk(), bucket_size(stop - start)) if chunk is None
             else int(chunk))
    plan = large_batch_plan(chunk)
    params, arrays, key = _place((params, _select(word_model, EXPLORE_KEYS), key), plan)
    temperature = np.float32(temperature)

    def dispatch(first):
        settings = _explore_chunk(params, config, arrays, key, np.int32(first), temperature,
                                  chunk, layout, plan)
        settings.copy_to_host_async()  # on an accelerator the copy overlaps the next chunk
        return first, settings

    # the next chunk is dispatched before this one is copied out, so decoding overlaps the
    # consumer; at most two chunks are alive at a time
    pending = dispatch(start)
    for first in range(start + chunk, stop + chunk, chunk):
        following = dispatch(first) if first < stop else None
        done, settings = pending
        yield np.asarray(settings)[: stop - done]
        pending = following


@functools.partial(jax.jit, static_argnames=("count",))
def _explore_latents_jit(word_model, key, start, count, temperature):
    return _explore_latents(word_model, key, start, count, temperature)


def explore_latents(word_model, key, start: int, count: int, *,
                    temperature: float = 1.0) -> np.ndarray:
    """The latents ``[count, L]`` that exploration decodes for rows ``start … start + count - 1``
    (the same draws as :func:`explore_range`), on the host."""
    _check_explore_args(int(start) + int(count), None, temperature)
    return np.asarray(_explore_latents_jit(_select(word_model, EXPLORE_KEYS), key,
                                           np.int32(start), int(count), np.float32(temperature)))


# --------------------------------------------------------------------------- fitting

@functools.partial(jax.jit, static_argnames=("config",))
def _encode_latents(params, config, unit_NxP):
    return models.encode(params, config, unit_NxP)[0]


def encode_latents(params, config: models.ModelConfig, settings_NxP,
                   layout: EQLayout = DEFAULT_LAYOUT, *, chunk: int = 8192) -> np.ndarray:
    """Physical settings ``[N, P]`` → latents ``[N, L]`` (deterministic encoder), in chunks."""
    unit = np.asarray(paramspace.normalize(np.asarray(settings_NxP, np.float32), layout),
                      np.float32)
    parts = [np.asarray(_encode_latents(params, config, unit[i:i + chunk]))
             for i in range(0, len(unit), chunk)]
    return np.concatenate(parts).astype(np.float32)



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
