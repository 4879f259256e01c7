"""Exploration: settings decoded from a Gaussian over all training latents, streamed in
chunks, by row range, or ranked by novelty in compiled scans over chunks."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from neuraleq_jax.generation.common import _decode_physical, _in_latent_range, _select, bucket_size
from neuraleq_jax.model import networks, response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout
from neuraleq_jax.sharding import large_batch_plan, over_rows, place

# keys of the word-model dict that exploration and novelty ranking read
EXPLORE_KEYS = ("global_centre_L", "global_spread_LxL")
NOVELTY_KEYS = EXPLORE_KEYS + ("reference_responses_RxF",)


def _explore_latents(word_model, key, start, chunk: int, temperature):
    """Latents for sample indices ``start … start + chunk - 1``; sample ``i`` draws from
    ``fold_in(key, i)``, so results do not depend on the chunk size."""
    return _explore_latents_at(word_model, key, start + jnp.arange(chunk), temperature)


def _explore_latents_at(word_model, key, index_C, temperature):
    """Latents ``[C, L]`` of the sample indices ``index_C``."""
    centre_L, spread_LxL = word_model["global_centre_L"], word_model["global_spread_LxL"]
    z_CxL = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), centre_L.shape))(
        index_C
    )
    return _in_latent_range(centre_L + temperature * z_CxL @ spread_LxL.T)


@functools.partial(jax.jit, static_argnames=("config", "chunk", "layout", "plan"))
def _explore_chunk(params, config, word_model, key, start, temperature, chunk, layout, plan=None):
    def tile(shared, index_T):
        # sampling inside the tile too: its latents never leave the cache either
        params, word_model, key, temperature = shared
        return _decode_physical(
            params, config, _explore_latents_at(word_model, key, index_T, temperature), layout
        )

    return over_rows(tile, (params, word_model, key, temperature), start + jnp.arange(chunk), plan)


def _check_explore_args(n: int, chunk: int | None, temperature: float):
    if not 1 <= int(n) < 2**31:  # sample indices are int32 (one fold_in per sample)
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


def explore_chunks(
    params,
    config: networks.ModelConfig,
    word_model,
    key,
    n: int,
    *,
    chunk: int | None = None,
    temperature: float = 1.0,
    layout: EQLayout = DEFAULT_LAYOUT,
) -> Iterator[np.ndarray]:
    """Stream ``n`` explored settings as host arrays of at most ``[chunk, P]``
    (``chunk`` None: :func:`default_explore_chunk`).

    Latents are drawn from a Gaussian fitted to all training latents (``temperature`` scales its
    spread) and decoded ``chunk`` at a time, so memory stays bounded for any ``n``; one compiled
    function serves every chunk. A large chunk is decoded in cache-sized tiles and split across
    the local devices (see :mod:`neuraleq_jax.sharding`); results do not depend on either.
    """
    _check_explore_args(n, chunk, temperature)
    n = int(n)
    # a power-of-two chunk for small n: few compiled shapes; the surplus samples are dropped
    chunk = min(default_explore_chunk() if chunk is None else int(chunk), bucket_size(n))
    yield from explore_range(
        params, config, word_model, key, 0, n, chunk=chunk, temperature=temperature, layout=layout
    )


def explore(
    params,
    config: networks.ModelConfig,
    word_model,
    key,
    n: int,
    *,
    chunk: int | None = None,
    temperature: float = 1.0,
    layout: EQLayout = DEFAULT_LAYOUT,
) -> np.ndarray:
    """``n`` explored settings ``[n, P]`` (see :func:`explore_chunks`), gathered on the host.

    The result alone is ``60 n`` bytes (600 MB for 10M settings); it is filled chunk by chunk,
    never held twice. To look at more settings than fit in memory, consume
    :func:`explore_chunks` or rank on the device with :func:`explore_novel`.
    """
    _check_explore_args(n, chunk, temperature)
    settings = np.empty((int(n), layout.n_params), np.float32)
    done = 0
    for part in explore_chunks(
        params, config, word_model, key, n, chunk=chunk, temperature=temperature, layout=layout
    ):
        settings[done : done + len(part)] = part
        done += len(part)
    return settings


def novelty_db(settings_NxP, reference_responses_RxF, layout: EQLayout = DEFAULT_LAYOUT):
    """RMS dB (reference grid) from each setting's response to the nearest reference response.

    ``[N, P]`` settings, ``[R, F]`` responses → ``[N]`` dB.
    """
    responses_NxF = response.magnitude_response_db(settings_NxP, layout=layout)
    # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: one matmul instead of an [N, R, F] tensor
    sq_N = jnp.sum(responses_NxF**2, axis=-1)
    sq_R = jnp.sum(reference_responses_RxF**2, axis=-1)
    cross_NxR = responses_NxF @ reference_responses_RxF.T
    nearest_N = jnp.min(sq_N[:, None] + sq_R[None, :] - 2.0 * cross_NxR, axis=-1)
    return jnp.sqrt(jnp.maximum(nearest_N, 0.0) / responses_NxF.shape[-1])


# chunks per compiled call of the novelty ranking: a call returns to Python every ~250k
# candidates, where progress is reported and a stop (Ctrl-C, SIGTERM) can take effect
NOVEL_SEGMENT_CHUNKS = 32
NOVEL_CHUNK = 8192  # candidates scored at a time (the default of explore_novel's chunk)


@functools.partial(jax.jit, static_argnames=("config", "n", "chunk", "segment", "layout"))
def _explore_novel_segment(
    params, config, word_model, key, temperature, carry, first, n, chunk, segment, layout
):
    """The running top-k ``carry`` merged with chunks ``first … first + segment - 1``."""

    def body(carry, chunk_index):
        best_scores_K, best_settings_KxP = carry
        start = chunk_index * chunk
        settings = _decode_physical(
            params, config, _explore_latents(word_model, key, start, chunk, temperature), layout
        )
        scores = novelty_db(settings, word_model["reference_responses_RxF"], layout)
        valid = (
            (start + jnp.arange(chunk) < n)
            & jnp.isfinite(scores)
            & jnp.all(jnp.isfinite(settings), axis=-1)
        )
        scores = jnp.where(valid, scores, -jnp.inf)
        # running top-k: merge this chunk's scores with the best so far
        pooled_scores = jnp.concatenate([best_scores_K, scores])
        pooled_settings = jnp.concatenate([best_settings_KxP, settings])
        top_scores, top_index = jax.lax.top_k(pooled_scores, best_scores_K.shape[0])
        return (top_scores, pooled_settings[top_index]), None

    carry, _ = jax.lax.scan(body, carry, first + jnp.arange(segment))
    return carry


def explore_novel(
    params,
    config: networks.ModelConfig,
    word_model,
    key,
    n: int,
    k: int,
    *,
    chunk: int = NOVEL_CHUNK,
    temperature: float = 1.0,
    layout: EQLayout = DEFAULT_LAYOUT,
    progress=None,
):
    """The ``k`` most novel of ``n`` explored settings, by compiled scans over chunks.

    Novelty is :func:`novelty_db` against the training settings' responses stored in the word
    model. Memory is bounded by ``chunk`` (a running top-k is carried across chunks). Every
    :data:`NOVEL_SEGMENT_CHUNKS` chunks the scan returns to Python and calls
    ``progress(candidates_done)`` if given; an exception it raises (a stop) ends the ranking.

    Returns:
      ``(settings [k, P], novelty_db [k])``, most novel first; every setting is finite and
      inside the layout's ranges.
    """
    _check_explore_args(n, chunk, temperature)
    if not 1 <= int(k) <= int(n):
        raise ValueError(f"k must be in [1, n={n}], got {k}")
    n, chunk = int(n), min(int(chunk), int(n))
    n_chunks = -(-n // chunk)
    word_model = _select(word_model, NOVELTY_KEYS)
    carry = (jnp.full((int(k),), -jnp.inf), jnp.zeros((int(k), layout.n_params), jnp.float32))
    for first in range(0, n_chunks, NOVEL_SEGMENT_CHUNKS):
        segment = min(NOVEL_SEGMENT_CHUNKS, n_chunks - first)
        carry = _explore_novel_segment(
            params,
            config,
            word_model,
            key,
            np.float32(temperature),
            carry,
            np.int32(first),
            n,
            chunk,
            segment,
            layout,
        )
        if progress is not None:
            jax.block_until_ready(carry)
            progress(min((first + segment) * chunk, n))
    scores_K, settings_KxP = carry
    return settings_KxP, scores_K


# explore by row index: a store resumes at any chunk and several processes each take a share of
# the rows; row i is still the draw of fold_in(key, i), so a range equals that slice of explore


def explore_range(
    params,
    config: networks.ModelConfig,
    word_model,
    key,
    start: int,
    stop: int,
    *,
    chunk: int | None = None,
    temperature: float = 1.0,
    layout: EQLayout = DEFAULT_LAYOUT,
) -> Iterator[np.ndarray]:
    """Stream the explored settings of rows ``start … stop - 1`` as host arrays of at most
    ``[chunk, P]``, the first starting at row ``start`` (``chunk`` None:
    :func:`default_explore_chunk`, or less for a short range). Row ``i`` equals row ``i`` of
    :func:`explore` with the same key; memory and devices as in :func:`explore_chunks`.
    """
    start, stop = int(start), int(stop)
    if not 0 <= start < stop <= 2**31 - 1:
        raise ValueError(f"need 0 <= start < stop < 2**31 (rows), got start={start}, stop={stop}")
    _check_explore_args(stop, chunk, temperature)
    # a given chunk is kept even for a short range, so every chunk of a store is decoded by the
    # same compiled program, whichever range it falls in
    chunk = min(default_explore_chunk(), bucket_size(stop - start)) if chunk is None else int(chunk)
    plan = large_batch_plan(chunk)
    params, arrays, key = place((params, _select(word_model, EXPLORE_KEYS), key), plan)
    temperature = np.float32(temperature)

    def dispatch(first):
        settings = _explore_chunk(
            params, config, arrays, key, np.int32(first), temperature, chunk, layout, plan
        )
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


def explore_latents(
    word_model, key, start: int, count: int, *, temperature: float = 1.0
) -> np.ndarray:
    """The latents ``[count, L]`` that exploration decodes for rows ``start … start + count - 1``
    (the same draws as :func:`explore_range`), on the host."""
    _check_explore_args(int(start) + int(count), None, temperature)
    return np.asarray(
        _explore_latents_jit(
            _select(word_model, EXPLORE_KEYS),
            key,
            np.int32(start),
            int(count),
            np.float32(temperature),
        )
    )
