"""Training: :func:`fit` runs whole epochs as compiled scans over a device mesh, resuming from
a workdir's checkpoints.

The loop reads top to bottom in named steps: check inputs → mesh and compiled programs
(:mod:`neuraleq_jax.training.steps`) → state, fresh or restored from the newest checkpoint →
ahead-of-time compile → epochs. It dispatches epoch ``e`` and only then does the host work of
epoch ``e - 1`` (:class:`epoch_log.EpochLog`: NaN check, metrics line, checkpoint, progress
bar), so logging never stalls the device.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import chex
import jax
import numpy as np
from jax.sharding import Mesh

from neuraleq_jax.config import TrainConfig
from neuraleq_jax.data.dataset import EQDataset
from neuraleq_jax.model import networks
from neuraleq_jax.sharding import make_mesh
from neuraleq_jax.training import checkpoints, epoch_log
from neuraleq_jax.training import workdir as workdir_lib
from neuraleq_jax.training.epoch_log import combine_chunks
from neuraleq_jax.training.steps import (
    Programs,
    TrainState,
    check_batch_divides,
    compile_programs,
    epoch_orders,
    evaluate_batch,
)

METRICS_FILE = workdir_lib.TRAINING_METRICS_FILE
# settings per evaluation call: the contrastive and cluster terms hold [N, N] pairwise arrays
# (a 60k-setting validation set would need ~70 GB at once)
EVAL_CHUNK = 4096


@dataclasses.dataclass
class TrainResult:
    """What :func:`fit` returns.

    Attributes:
      params: trained parameters.
      history: one dict per epoch (the lines of ``metrics.jsonl``).
      model_config, train_config: the configs used.
      state: the final :class:`TrainState` (optimiser state included).
      epochs_done: epochs completed (counting those restored from a checkpoint).
      timings: ``compile_s`` (ahead-of-time compile) and ``train_s`` (the epoch loop).
      interrupted: training stopped because ``stop_requested`` said so (a checkpoint of the
        last finished epoch was saved when there is a workdir).
    """

    params: Any
    history: list[dict]
    model_config: networks.ModelConfig
    train_config: TrainConfig
    state: TrainState | None = None
    epochs_done: int = 0
    timings: dict = dataclasses.field(default_factory=dict)
    interrupted: bool = False


# ------------------------------------------------------------------ checks and chunked evaluation


def _check_inputs(
    train_ds: EQDataset,
    val_ds: EQDataset | None,
    model_config: networks.ModelConfig,
    train_config: TrainConfig,
) -> None:
    if not isinstance(train_ds, EQDataset):
        raise TypeError(f"train_ds must be an EQDataset, got {type(train_ds).__name__}")
    if train_ds.layout.n_bands != model_config.n_bands:
        raise ValueError(
            f"the data has {train_ds.layout.n_bands} bands but the model "
            f"expects {model_config.n_bands} (model.n_bands)"
        )
    if len(train_ds) < train_config.batch_size:
        raise ValueError(
            f"the training set has {len(train_ds)} settings, fewer than one batch "
            f"(batch_size {train_config.batch_size}); lower train.batch_size"
        )
    words = np.unique(train_ds.word_ids)
    if len(words) < 2:
        raise ValueError(
            "contrastive training needs settings of at least 2 words; the training "
            f"set has only {[train_ds.vocabulary[i] for i in words]}"
        )
    if not np.all(np.isfinite(train_ds.settings)):
        raise ValueError("the training settings contain NaN or Inf")
    if val_ds is not None:
        if tuple(val_ds.vocabulary) != tuple(train_ds.vocabulary):
            raise ValueError("val_ds must share the training vocabulary (same words, same order)")
        if val_ds.layout != train_ds.layout:
            raise ValueError("val_ds must share the training layout")
        if len(val_ds) < 2:
            raise ValueError(f"val_ds needs at least 2 settings, got {len(val_ds)}")


def check_run(
    train_ds: EQDataset,
    val_ds: EQDataset | None,
    model_config: networks.ModelConfig,
    train_config: TrainConfig,
) -> None:
    """Everything :func:`fit` would refuse, checked without compiling or writing anything:
    the data (at least 2 words, one batch, finite, validation set compatible), the device count
    and the batch size's split over it. Raises ValueError (TypeError for a non-dataset)."""
    _check_inputs(train_ds, val_ds, model_config, train_config)
    available = jax.device_count()
    if train_config.devices > available:
        raise ValueError(
            f"train.devices asks for {train_config.devices} devices but only "
            f"{available} {'is' if available == 1 else 'are'} available "
            f"({jax.devices()[0].platform})"
        )
    check_batch_divides(train_config.batch_size, train_config.devices or available)


def eval_slices(n: int, chunk: int | None = None) -> list[slice]:
    """Consecutive slices covering ``n`` rows, at most ``chunk`` (default :data:`EVAL_CHUNK`)
    each, their sizes differing by at most one (so a set of any size compiles at most two
    evaluation shapes)."""
    chunk = EVAL_CHUNK if chunk is None else chunk
    parts = max(1, -(-int(n) // int(chunk)))
    base, extra = divmod(int(n), parts)
    bounds = np.cumsum([0] + [base + (i < extra) for i in range(parts)])
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


# ------------------------------------------------------------------ the steps of fit


@dataclasses.dataclass(frozen=True)
class _EpochFeed:
    """The training rows of each epoch, shuffled and placed on the mesh as ``[T, B, …]``."""

    programs: Programs
    x_unit_NxP: np.ndarray
    labels_N: np.ndarray
    orders_ExN: np.ndarray
    steps_per_epoch: int
    batch_size: int

    def batches(self, epoch: int) -> tuple[jax.Array, jax.Array]:
        """``(x [T, B, P], labels [T, B])`` of ``epoch``; the rows past ``T·B`` wait for
        another epoch's order."""
        rows_TxB = self.orders_ExN[epoch, : self.steps_per_epoch * self.batch_size].reshape(
            self.steps_per_epoch, self.batch_size
        )
        return (
            self.programs.put(self.x_unit_NxP[rows_TxB], "epoch"),
            self.programs.put(self.labels_N[rows_TxB], "epoch"),
        )


def _place_validation(programs: Programs, val_ds: EQDataset | None) -> list | None:
    """The validation set as ``[(x, labels), …]`` chunks on every device (None without one):
    in chunks, as the pairwise loss terms need memory ∝ rows²."""
    if val_ds is None:
        return None
    x_NxP, labels_N = val_ds.normalized(), val_ds.word_ids.astype(np.int32)
    return [
        (programs.put(x_NxP[rows], "replicated"), programs.put(labels_N[rows], "replicated"))
        for rows in eval_slices(len(val_ds))
    ]


class _Setup(NamedTuple):
    """A run ready to compile: its programs, data on the mesh, and (restored) state."""

    programs: Programs
    feed: _EpochFeed
    val_parts: list | None
    meta: dict
    metric: str  # what ranks the checkpoints: val_loss, or train_loss without validation
    state: TrainState
    store: checkpoints.TrainingCheckpoints | None
    start_epoch: int
    history: list[dict]


def _set_up(
    train_ds: EQDataset,
    val_ds: EQDataset | None,
    model_config: networks.ModelConfig,
    train_config: TrainConfig,
    mesh: Mesh | None,
    workdir: Path | None,
    metadata: dict | None,
) -> _Setup:
    """Mesh and compiled programs, the data placed on it, and the state: fresh, or restored
    from the newest checkpoint in ``workdir``."""
    steps_per_epoch = len(train_ds) // train_config.batch_size  # the rest rotates by reshuffling
    mesh = make_mesh(train_config.devices) if mesh is None else mesh
    programs = compile_programs(
        model_config, train_config, train_ds.layout, steps_per_epoch=steps_per_epoch, mesh=mesh
    )
    feed = _EpochFeed(
        programs,
        train_ds.normalized(),
        train_ds.word_ids.astype(np.int32),
        epoch_orders(train_config.seed, train_config.epochs, len(train_ds)),
        steps_per_epoch,
        train_config.batch_size,
    )
    val_parts = _place_validation(programs, val_ds)
    meta = epoch_log.checkpoint_meta(train_ds, model_config, train_config, metadata)
    metric = "val_loss" if val_ds is not None else "train_loss"
    state, store, start_epoch, history = programs.init(), None, 0, []
    if workdir is not None:
        store, state, start_epoch, history = epoch_log.open_workdir(
            workdir, state, programs, meta, train_config, metric
        )
    return _Setup(programs, feed, val_parts, meta, metric, state, store, start_epoch, history)


def _compile_ahead(
    programs: Programs, state: TrainState, first_batches, val_parts: list | None
) -> tuple[Callable, Callable | None]:
    """The epoch program and the validation dispatcher, compiled ahead of time for these
    shapes (reused by later fits of the same programs)."""
    cache = programs.executables
    x0, y0 = first_batches
    if ("epoch", x0.shape) not in cache:
        cache["epoch", x0.shape] = programs.epoch.lower(state, x0, y0).compile()
    if val_parts is None:
        return cache["epoch", x0.shape], None
    for val_x, val_y in val_parts:
        if ("eval", val_x.shape) not in cache:
            cache["eval", val_x.shape] = programs.evaluate.lower(
                state.params, val_x, val_y
            ).compile()

    def evaluate_val(params) -> list:
        """Dispatch the validation chunks (asynchronously; combined on the host later)."""
        return [cache["eval", x.shape](params, x, y) for x, y in val_parts]

    return cache["epoch", x0.shape], evaluate_val


class _LoopEnd(NamedTuple):
    state: TrainState
    epochs_done: int
    interrupted: bool


def _run_epochs(
    log: epoch_log.EpochLog,
    state: TrainState,
    start_epoch: int,
    feed: _EpochFeed,
    epoch_fn: Callable,
    evaluate_val: Callable | None,
    stop_requested: Callable[[], bool] | None,
) -> _LoopEnd:
    """Dispatch epoch ``e``, then do the host work of epoch ``e - 1``; stop at the last epoch,
    when the hook says so, or (checkpointing the running epoch) when ``stop_requested``."""
    pending, finished, epochs_done, interrupted = None, state, start_epoch, False
    for epoch in range(start_epoch, log.train_config.epochs):
        if stop_requested is not None and stop_requested():
            interrupted = True
            break
        new_state, step_metrics = epoch_fn(state, *feed.batches(epoch))
        val_metrics = evaluate_val(new_state.params) if evaluate_val is not None else None
        if pending is not None:
            stop = log.finish(pending)
            finished, epochs_done = pending.state, pending.index + 1
            if stop:
                pending = None
                break
        pending = epoch_log.PendingEpoch(epoch, new_state, step_metrics, val_metrics)
        state = new_state
    if pending is not None:
        log.finish(pending, checkpoint=interrupted)
        finished, epochs_done = pending.state, pending.index + 1
    jax.block_until_ready(finished)
    return _LoopEnd(finished, epochs_done, interrupted)


def _progress_bar(show: bool, epochs: int, start_epoch: int):
    if not (show and jax.process_index() == 0):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=epochs, initial=start_epoch, desc="training", unit="epoch")


def _train_epochs(
    run: _Setup,
    train_config: TrainConfig,
    val_ds: EQDataset | None,
    workdir: Path | None,
    epoch_fn: Callable,
    evaluate_val: Callable | None,
    hooks: tuple,
) -> tuple[_LoopEnd, float]:
    """The epoch loop with its host side (:class:`epoch_log.EpochLog`) and progress bar;
    ``hooks`` is fit's ``(progress, on_epoch_end, stop_requested)``. Returns the loop's end
    and its wall time in seconds; the checkpoint store is closed afterwards."""
    progress, on_epoch_end, stop_requested = hooks
    bar = _progress_bar(progress, train_config.epochs, run.start_epoch)
    log = epoch_log.EpochLog(
        run.feed.steps_per_epoch,
        train_config,
        None if val_ds is None else val_ds.word_ids,
        run.metric,
        workdir / METRICS_FILE if workdir is not None and jax.process_index() == 0 else None,
        run.store,
        run.meta,
        bar,
        on_epoch_end,
        run.history,
    )
    try:
        end = _run_epochs(
            log, run.state, run.start_epoch, run.feed, epoch_fn, evaluate_val, stop_requested
        )
    finally:
        if bar is not None:
            bar.close()
        if run.store is not None:
            run.store.close()
    return end, time.perf_counter() - log.t_start


# ------------------------------------------------------------------ fit


def fit(
    train_ds: EQDataset,
    model_config: networks.ModelConfig,
    train_config: TrainConfig,
    *,
    val_ds: EQDataset | None = None,
    workdir: str | Path | None = None,
    progress: bool = False,
    mesh: Mesh | None = None,
    on_epoch_end: Callable[[dict], bool | None] | None = None,
    stop_requested: Callable[[], bool] | None = None,
    metadata: dict | None = None,
) -> TrainResult:
    """Train the model on ``train_ds``; resume from ``workdir``'s newest checkpoint if present.

    Args:
      train_ds: labelled settings (at least 2 words, at least one batch).
      model_config, train_config: architecture and optimisation settings.
      val_ds: optional validation set: per-epoch loss, silhouette and response error.
      workdir: folder for checkpoints and ``metrics.jsonl`` (None: keep nothing on disk).
      progress: show a tqdm bar with the running loss.
      mesh: the device mesh (default: ``train_config.devices`` devices on axis ``data``).
      on_epoch_end: called with each epoch's record; returning True stops training there
        (the state after that epoch is returned; what was not checkpointed is not saved).
      stop_requested: polled before each epoch is dispatched; once it returns True no new
        epoch starts, the one running is finished and checkpointed, and the result has
        ``interrupted=True`` (how a signal handler stops a run without losing epochs).
      metadata: extra JSON-ready values stored in every checkpoint's meta.

    Returns:
      A :class:`TrainResult`. Raises FloatingPointError as soon as a loss is NaN or Inf.
    """
    _check_inputs(train_ds, val_ds, model_config, train_config)
    workdir = None if workdir is None else Path(workdir)
    run = _set_up(train_ds, val_ds, model_config, train_config, mesh, workdir, metadata)
    t0 = time.perf_counter()
    first = run.feed.batches(min(run.start_epoch, train_config.epochs - 1))
    epoch_fn, evaluate_val = _compile_ahead(run.programs, run.state, first, run.val_parts)
    compile_s = time.perf_counter() - t0

    hooks = (progress, on_epoch_end, stop_requested)
    end, train_s = _train_epochs(run, train_config, val_ds, workdir, epoch_fn, evaluate_val, hooks)
    timings = {
        "compile_s": compile_s,
        "train_s": train_s,
        "epochs_run": end.epochs_done - run.start_epoch,
        "steps_per_epoch": run.feed.steps_per_epoch,
    }
    return TrainResult(
        params=end.state.params,
        history=run.history,
        model_config=model_config,
        train_config=train_config,
        state=end.state,
        epochs_done=end.epochs_done,
        interrupted=end.interrupted,
        timings=timings,
    )


# ------------------------------------------------------------------ held-out evaluation


def evaluate_dataset(
    params,
    model_config: networks.ModelConfig,
    train_config: TrainConfig,
    dataset: EQDataset,
    *,
    reference_ds: EQDataset | None = None,
) -> dict:
    """Held-out figures of ``dataset``: losses, per-field unit MSE, response error (RMS dB),
    latent silhouette; with ``reference_ds`` (the training set) also the unit MSE of always
    predicting its mean, per field (``mean_baseline_gain/freq/q``)."""
    chex.assert_equal(dataset.layout.n_bands, model_config.n_bands)
    layout = dataset.layout
    x_unit = dataset.normalized()
    params = jax.tree.map(checkpoints.host_array, params)
    evaluate = jax.jit(
        lambda p, x, y: evaluate_batch(
            p, x, y, model_config=model_config, train_config=train_config, layout=layout
        )
    )
    ids = dataset.word_ids.astype(np.int32)
    out = combine_chunks(
        [evaluate(params, x_unit[rows], ids[rows]) for rows in eval_slices(len(dataset))]
    )
    latents = out.pop("latents")
    figures = {k: float(v) for k, v in out.items()}
    figures["silhouette"] = epoch_log.silhouette_or_none(latents, dataset.word_ids)
    if reference_ds is not None:
        mean_P = reference_ds.normalized().mean(axis=0)
        squared = (x_unit - mean_P) ** 2
        for field, index in (
            ("gain", layout.gain_indices),
            ("freq", layout.freq_indices),
            ("q", layout.q_indices),
        ):
            figures[f"mean_baseline_{field}"] = float(squared[:, index].mean())
    return figures
