"""Exploring into a store (:mod:`neuraleq_jax.explore.store`): stream, resume, share the rows.

:func:`explore_to_store` decodes the store's rows chunk by chunk (``generation.explore_range``),
scores them on the device when asked (novelty, nearest word, distance to a target response),
and writes each chunk asynchronously while the next one decodes: memory stays at a few chunks
whatever ``n``. A chunk counts as done only once its marker ``progress/chunk_done[c]`` is
written, after its data; a rerun skips done chunks. With ``jax.distributed`` each process takes
a contiguous share of the chunks; process 0 merges the per-chunk top-k lists at the end.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np

from neuraleq_jax import checks, generation
from neuraleq_jax.explore import store as store_lib
from neuraleq_jax.model import networks, response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout
from neuraleq_jax.training import checkpoints

SCORE_TILE = 1_024  # settings per scoring tile: their [T, 256] responses stay in cache
PENDING_CHUNKS = 2  # chunks whose writes may be in flight while the next one decodes
MERGE_BLOCK = 4_096  # chunks' top-k lists read at a time when merging


def model_digest(params, config: networks.ModelConfig, word_model) -> str:
    """SHA-256 over the parameters, every word-model array and the architecture."""
    tree = {"params": params, "word_model": {k: np.asarray(v) for k, v in word_model.items()}}
    architecture = json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)
    return hashlib.sha256((checkpoints.tree_digest(tree) + architecture).encode()).hexdigest()


def key_for_seed(seed: int):
    """The key ``NeuralEQMorphingSystem.explore_latent_space(seed=seed)`` explores with."""
    return jax.random.fold_in(jax.random.key(np.uint32(checks.seed(seed))), np.uint32(0))


# ------------------------------------------------------------------ scoring a chunk


def _nearest(responses_NxF, references_RxF):
    """Index ``[N]`` of the nearest reference and the RMS dB ``[N]`` to it."""
    sq_N = jnp.sum(responses_NxF**2, axis=-1)
    sq_R = jnp.sum(references_RxF**2, axis=-1)
    distance_NxR = sq_N[:, None] + sq_R[None, :] - 2.0 * responses_NxF @ references_RxF.T
    index_N = jnp.argmin(distance_NxR, axis=-1)
    nearest_N = jnp.take_along_axis(distance_NxR, index_N[:, None], axis=-1)[:, 0]
    return index_N.astype(jnp.int32), jnp.sqrt(
        jnp.maximum(nearest_N, 0.0) / responses_NxF.shape[-1]
    )


def _top(score_C, valid_C, k: int):
    """Local indices and scores of the ``k`` largest valid scores (invalid ones rank -inf)."""
    ranked_C = jnp.where(valid_C & jnp.isfinite(score_C), score_C, -jnp.inf)
    best, index = jax.lax.top_k(ranked_C, k)
    return index.astype(jnp.int32), best


@functools.partial(jax.jit, static_argnames=("columns", "novel_k", "target_k", "layout", "tile"))
def _score_chunk(
    settings_CxP,
    n_valid,
    references_RxF,
    word_responses_WxF,
    target_freqs_F,
    target_db_F,
    *,
    columns,
    novel_k,
    target_k,
    layout,
    tile,
):
    """Per-row scores of one (padded) chunk and its own top-k lists."""
    novelty = "novelty" in columns or novel_k

    def one_tile(settings_TxP):
        out = {}
        if novelty:
            out["novelty_db"] = generation.novelty_db(settings_TxP, references_RxF, layout)
        if "nearest_word" in columns:
            responses = response.magnitude_response_db(settings_TxP, layout=layout)
            out["nearest_word"], out["nearest_word_db"] = _nearest(responses, word_responses_WxF)
        if target_k:
            responses = response.magnitude_response_db(settings_TxP, target_freqs_F, layout=layout)
            out["target_db"] = response.rms_db(responses, target_db_F)
        return out

    n_rows, n_params = settings_CxP.shape
    tiles = settings_CxP.reshape(n_rows // tile, tile, n_params)
    out = jax.tree.map(lambda x: x.reshape(n_rows), jax.lax.map(one_tile, tiles))
    valid_C = (jnp.arange(n_rows) < n_valid) & jnp.all(jnp.isfinite(settings_CxP), axis=-1)
    if novel_k:
        out["novel_top"] = _top(out["novelty_db"], valid_C, novel_k)
    if target_k:
        index, best = _top(-out["target_db"], valid_C, target_k)
        out["target_top"] = (index, -best)
    return out


@dataclasses.dataclass(frozen=True)
class _Scorer:
    """What scoring a chunk needs besides the chunk: device arrays and static options."""

    references_RxF: jax.Array
    word_responses_WxF: jax.Array
    target_freqs_F: jax.Array
    target_db_F: jax.Array
    options: dict

    @classmethod
    def build(cls, spec: store_lib.StoreSpec, word_model, layout) -> _Scorer | None:
        if not (spec.columns and set(spec.columns) - {"latents"}) and not (
            spec.novel_k or spec.target_k
        ):
            return None
        target = spec.target or store_lib.Target((1000.0,), (0.0,))
        chunk = spec.chunk
        tile = min(SCORE_TILE, chunk)
        empty = np.zeros((1, 1), np.float32)
        return cls(
            references_RxF=jnp.asarray(word_model.get("reference_responses_RxF", empty)),
            word_responses_WxF=jnp.asarray(word_model.get("centre_responses_WxF", empty)),
            target_freqs_F=jnp.asarray(np.asarray(target.freqs, np.float32)),
            target_db_F=jnp.asarray(np.asarray(target.gains_db, np.float32)),
            options=dict(
                columns=tuple(sorted(set(spec.columns) - {"latents"})),
                novel_k=min(spec.novel_k, chunk),
                target_k=min(spec.target_k, chunk),
                layout=layout,
                tile=tile,
            ),
        )

    def __call__(self, settings_RxP, padded: int) -> dict:
        rows = len(settings_RxP)
        if rows < padded:  # padding rows repeat the last one; they are masked out of top k
            settings_RxP = np.concatenate(
                [settings_RxP, np.repeat(settings_RxP[-1:], padded - rows, axis=0)]
            )
        out = _score_chunk(
            settings_RxP,
            np.int32(rows),
            self.references_RxF,
            self.word_responses_WxF,
            self.target_freqs_F,
            self.target_db_F,
            **self.options,
        )
        return jax.tree.map(np.asarray, out)


# ------------------------------------------------------------------ writing chunks


def _write_chunk(arrays, spec, c: int, settings_RxP, scores, latents) -> list:
    """Start every write of chunk ``c``; returns their futures."""
    first, rows = c * spec.chunk, len(settings_RxP)
    chex.assert_shape(settings_RxP, (min(spec.chunk, spec.n - first), len(spec.param_names)))
    futures = [arrays["settings"][first : first + rows].write(settings_RxP)]
    if latents is not None:
        futures.append(arrays["latents"][first : first + rows].write(latents[:rows]))
    for name in ("novelty_db", "nearest_word", "nearest_word_db"):
        if name in arrays:
            futures.append(arrays[name][first : first + rows].write(scores[name][:rows]))
    for name in ("novel", "target"):
        if f"{name}_top" in scores:
            index, best = scores[f"{name}_top"]
            kept = np.isfinite(best)
            futures.append(
                arrays[f"progress/{name}_rows"][c].write(
                    np.where(kept, first + index.astype(np.int64), -1)
                )
            )
            futures.append(
                arrays[f"progress/{name}_score"][c].write(
                    np.where(kept, best, np.nan).astype(np.float32)
                )
            )
    return futures


def _runs(chunks: list[int]) -> list[tuple[int, int]]:
    """Maximal runs ``[a, b)`` of consecutive chunk indices."""
    runs = []
    for c in chunks:
        if runs and runs[-1][1] == c:
            runs[-1] = (runs[-1][0], c + 1)
        else:
            runs.append((c, c + 1))
    return runs


def _write_chunks(path, spec, todo: list[int], model, key, bar, check_stop) -> None:
    """Explore and write the chunks ``todo``, each marked done after its data."""
    params, config, word_model, layout = model
    arrays = {
        name: store_lib.open_array(path, name, layout_)
        for name, layout_ in store_lib.array_layout(spec).items()
    }
    scorer = _Scorer.build(spec, word_model, layout)
    padded = -(-spec.chunk // min(SCORE_TILE, spec.chunk)) * min(SCORE_TILE, spec.chunk)
    pending = collections.deque()

    def settle(c, futures, rows):
        for future in futures:
            future.result()
        arrays["progress/chunk_done"][c].write(np.uint8(1)).result()
        bar.update(rows)

    for run_start, run_stop in _runs(todo):
        parts = generation.explore_range(
            params,
            config,
            word_model,
            key,
            run_start * spec.chunk,
            min(run_stop * spec.chunk, spec.n),
            chunk=spec.chunk,
            temperature=spec.temperature,
            layout=layout,
        )
        for c, settings in enumerate(parts, start=run_start):
            try:
                check_stop()
            except BaseException:
                while pending:  # the chunks already written are marked done, so a rerun skips them
                    settle(*pending.popleft())
                raise
            scores = scorer(settings, padded) if scorer is not None else {}
            latents = (
                generation.explore_latents(
                    word_model, key, c * spec.chunk, spec.chunk, temperature=spec.temperature
                )
                if "latents" in spec.columns
                else None
            )
            pending.append(
                (c, _write_chunk(arrays, spec, c, settings, scores, latents), len(settings))
            )
            while len(pending) > PENDING_CHUNKS:
                settle(*pending.popleft())
    while pending:
        settle(*pending.popleft())


# ------------------------------------------------------------------ top k


def merge_top(rows_K, scores_K, k: int, *, largest: bool):
    """The ``k`` best of candidate rows (row -1: none): by score (largest or smallest first),
    ties to the lower row, so the result does not depend on how candidates were grouped."""
    rows_K, scores_K = np.asarray(rows_K).ravel(), np.asarray(scores_K).ravel()
    keep = rows_K >= 0
    rows_K, scores_K = rows_K[keep], scores_K[keep]
    order = np.lexsort((rows_K, -scores_K if largest else scores_K))[:k]
    return rows_K[order], scores_K[order]


def _finish_top(path, spec) -> None:
    """Merge every chunk's top-k list into ``top_novel`` / ``top_target`` with their settings."""
    settings = store_lib.open_array(path, "settings")
    for name, k, metric, largest in (
        ("novel", spec.novel_k, "novelty_db", True),
        ("target", spec.target_k, "distance_db", False),
    ):
        if not k:
            continue
        rows_view = store_lib.open_array(path, f"progress/{name}_rows")
        score_view = store_lib.open_array(path, f"progress/{name}_score")
        rows, scores = np.zeros(0, np.int64), np.zeros(0, np.float32)
        for start in range(0, spec.n_chunks, MERGE_BLOCK):  # a running top k over blocks
            block = slice(start, min(start + MERGE_BLOCK, spec.n_chunks))
            rows, scores = merge_top(
                np.concatenate([rows, rows_view[block].read().result().ravel()]),
                np.concatenate([scores, score_view[block].read().result().ravel()]),
                k,
                largest=largest,
            )
        chosen = settings[rows].read().result()  # one read per chunk that holds a chosen row
        group = f"top_{name}"
        store_lib.write_array(path, f"{group}/rows", rows.astype(np.int64), k, -1)
        store_lib.write_array(path, f"{group}/{metric}", scores.astype(np.float32), k, "NaN")
        store_lib.write_array(path, f"{group}/settings", chosen.astype(np.float32), k, "NaN")


# ------------------------------------------------------------------ the whole run


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"neuraleq_explore_{name}")


def process_share(n_chunks: int, process: int, processes: int) -> range:
    """The contiguous chunks process ``process`` of ``processes`` explores."""
    return range(n_chunks * process // processes, n_chunks * (process + 1) // processes)


def _rows_in(spec: store_lib.StoreSpec, chunks) -> int:
    return sum(min(spec.chunk, spec.n - c * spec.chunk) for c in chunks)


@dataclasses.dataclass(frozen=True)
class StoreReport:
    """What :func:`explore_to_store` did: ``store`` (opened), ``already_complete``,
    ``chunks_before`` (done before this run, all processes) and ``rows_written`` (this process),
    ``seconds``; ``replaced``: an unfinished store of another run, with no finished chunk, was
    at ``path`` and is replaced."""

    store: store_lib.ExploreStore
    already_complete: bool
    chunks_before: int
    rows_written: int
    seconds: float
    replaced: bool = False


def explore_to_store(
    path,
    params,
    config: networks.ModelConfig,
    word_model,
    key,
    n: int,
    *,
    chunk: int | None = None,
    temperature: float = 1.0,
    columns=(),
    novel_k: int = 0,
    target: store_lib.Target | None = None,
    target_k: int = 0,
    seed: int | None = None,
    vocabulary=(),
    layout: EQLayout = DEFAULT_LAYOUT,
    progress: bool = False,
    check_stop: Callable[[], None] = lambda: None,
) -> StoreReport:
    """Explore ``n`` settings into the Zarr store ``path`` (created, resumed, or left alone
    when complete); rows equal ``generation.explore(params, config, word_model, key, n)``.

    Args:
      chunk: rows per chunk (None: the store's, or ``generation.default_explore_chunk()``).
      columns: per-row extras, any of ``explore_store.COLUMNS``.
      novel_k / target_k: keep the ``k`` most novel rows / the ``k`` nearest to ``target``.
      progress: show a tqdm bar (settings/s and ETA) for this process's share.
      check_stop: called before each chunk; what it raises stops the run (the chunks marked
        done stay done, and a rerun resumes after them).
    Raises:
      ValueError: ``path`` holds something else (another model, key, n, chunk, ...).
    """
    began, path = time.perf_counter(), Path(path)
    n, chunk = _checked_sizes(path, n, chunk, columns, novel_k, target, target_k)
    spec = store_lib.StoreSpec(
        model_digest=model_digest(params, config, word_model),
        key_data=tuple(int(x) for x in np.asarray(jax.random.key_data(key)).ravel()),
        n=n,
        chunk=chunk,
        param_names=tuple(layout.param_names),
        latent_dim=int(config.latent_dim),
        vocabulary=tuple(vocabulary),
        temperature=float(temperature),
        columns=tuple(sorted(set(columns))),
        novel_k=int(novel_k),
        target_k=int(target_k),
        target=target,
        seed=seed,
    )
    model = (params, config, word_model, layout)
    return _explore(path, spec, model, key, progress, began, check_stop)


def _explore(path: Path, spec, model, key, progress: bool, began: float, check_stop) -> StoreReport:
    """Create or resume the store at ``path`` and write this process's unfinished chunks;
    ``model`` is ``(params, config, word_model, layout)``."""
    replace = store_lib.replaceable(path, spec)  # another run's store with nothing finished
    attributes = None if replace else store_lib.check_store(path, spec)
    if attributes is not None and attributes.get("complete"):
        return StoreReport(
            store_lib.open_store(path), True, spec.n_chunks, 0, time.perf_counter() - began
        )
    _barrier("checked")  # every process has looked before process 0 starts writing
    with store_lib.disk_errors(path):
        if jax.process_index() == 0:
            if replace:
                store_lib.remove_store(path)
            store_lib.create_store(path, spec)
        _barrier("created")
        done = store_lib.open_array(path, "progress/chunk_done").read().result().astype(bool)
        share = process_share(spec.n_chunks, jax.process_index(), jax.process_count())
        todo = [c for c in share if not done[c]]
        with _progress_bar(spec, share, todo, enabled=progress) as bar:
            _write_chunks(path, spec, todo, model, key, bar, check_stop)
        _barrier("chunks")
        if jax.process_index() == 0:
            _finish_top(path, spec)
            store_lib.mark_complete(path, spec)
    _barrier("complete")
    return StoreReport(
        store_lib.open_store(path),
        False,
        int(done.sum()),
        _rows_in(spec, todo),
        time.perf_counter() - began,
        replaced=replace,
    )


def _progress_bar(spec, share: range, todo: list[int], *, enabled: bool):
    """A tqdm bar over this process's rows (settings/s and ETA), starting at those done."""
    from tqdm.auto import tqdm

    name = "explore" if jax.process_count() == 1 else f"explore {jax.process_index()}"
    return tqdm(
        total=_rows_in(spec, share),
        initial=_rows_in(spec, share) - _rows_in(spec, todo),
        unit="settings",
        unit_scale=True,
        disable=not enabled,
        smoothing=0.05,
        desc=name,
    )


def _checked_sizes(path, n, chunk, columns, novel_k, target, target_k) -> tuple[int, int]:
    """``(n, chunk)`` as ints once every size and option is known good; ``chunk`` None takes
    the existing store's when it explores the same ``n`` (a resume), else the default explore
    chunk (at most n's bucket)."""
    n = int(n)
    if not 1 <= n < 2**31:
        raise ValueError(f"n (settings to explore) must be in [1, 2**31), got {n}")
    unknown = sorted(set(columns) - set(store_lib.COLUMNS))
    if unknown:
        raise ValueError(f"unknown columns {unknown}; choose from {', '.join(store_lib.COLUMNS)}")
    for name, k in (("novel_k", novel_k), ("target_k", target_k)):
        if not 0 <= int(k) <= n:
            raise ValueError(f"{name} must be in [0, n={n}], got {k}")
    if bool(target_k) != (target is not None):
        raise ValueError("target_k > 0 needs a target response, and a target needs target_k > 0")
    if chunk is None:
        existing = store_lib.read_attributes(path)
        chunk = (
            existing["chunk"]
            if existing and "chunk" in existing and existing.get("n") == n
            else min(generation.default_explore_chunk(), generation.bucket_size(n))
        )
    elif int(chunk) < 1:
        raise ValueError(f"chunk must be >= 1 rows, got {chunk}")
    else:
        chunk = min(int(chunk), generation.bucket_size(n))
    return n, int(chunk)
