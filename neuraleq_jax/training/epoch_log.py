"""The host side of training, between the device's epochs: each epoch's record (its NaN check
and the means of its step metrics), the ``metrics.jsonl`` log, checkpoints when due, the
progress bar, and resuming a run from a workdir's newest checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from neuraleq_jax.config import TrainConfig
from neuraleq_jax.data.dataset import EQDataset
from neuraleq_jax.fileio import atomic_write_text
from neuraleq_jax.metrics.silhouette import silhouette_score
from neuraleq_jax.model import networks, paramspace
from neuraleq_jax.training import checkpoints
from neuraleq_jax.training import workdir as workdir_lib
from neuraleq_jax.training.steps import Programs, TrainState

METRICS_FILE = workdir_lib.TRAINING_METRICS_FILE


def host_metrics(metrics: dict) -> dict[str, np.ndarray]:
    """Each metric as a host array (this process's replica)."""
    return {k: checkpoints.host_array(v) for k, v in metrics.items()}


def combine_chunks(chunks: Sequence[dict]) -> dict[str, np.ndarray]:
    """Host metrics of a set evaluated in chunks (:func:`evaluate_batch` outputs): scalars
    averaged with the chunks' sizes as weights, latents concatenated. One chunk is returned as
    it is."""
    host = [host_metrics(chunk) for chunk in chunks]
    if len(host) == 1:
        return host[0]
    sizes = [len(h["latents"]) for h in host]
    out = {k: np.average([h[k] for h in host], weights=sizes) for k in host[0] if k != "latents"}
    out["latents"] = np.concatenate([h["latents"] for h in host])
    return out


def silhouette_or_none(latents_NxL: np.ndarray, labels_N: np.ndarray) -> float | None:
    """The latents' silhouette by word, or None where it is undefined (fewer than 2 words, or
    every setting its own word)."""
    if not 2 <= len(np.unique(labels_N)) <= len(labels_N) - 1:
        return None
    return float(silhouette_score(latents_NxL, labels_N))


def checkpoint_meta(
    train_ds: EQDataset,
    model_config: networks.ModelConfig,
    train_config: TrainConfig,
    metadata: dict | None,
) -> dict:
    """The JSON stored with every checkpoint: configs, vocabulary, layout and ``metadata``."""
    return {
        "model_config": json.loads(json.dumps(dataclasses.asdict(model_config))),
        "train_config": dataclasses.asdict(train_config),
        "vocabulary": list(train_ds.vocabulary),
        "layout": paramspace.layout_to_json(train_ds.layout),
        **(metadata or {}),
    }


def _resume(
    store: checkpoints.TrainingCheckpoints,
    state: TrainState,
    programs: Programs,
    meta: dict,
    epochs: int,
) -> tuple[TrainState, int]:
    """``(state, epochs done)`` from the newest checkpoint in ``store``, or ``(state, 0)``
    when there is none. A checkpoint of another model config raises ValueError."""
    latest = store.latest_epoch()
    if latest is None:
        return state, 0
    target = checkpoints.abstract_like(state, programs.state_sharding)
    state, saved = store.restore(latest, target)
    if saved.get("model_config") != meta["model_config"]:
        raise ValueError(
            f"the checkpoint in {store.directory} was trained with another model "
            f"config ({saved.get('model_config')}); use a new workdir"
        )
    return state, min(latest, epochs)


def open_workdir(
    workdir: Path,
    state: TrainState,
    programs: Programs,
    meta: dict,
    train_config: TrainConfig,
    metric: str,
) -> tuple[checkpoints.TrainingCheckpoints, TrainState, int, list[dict]]:
    """Open the checkpoint store of ``workdir`` and resume from it: ``(store, state, epochs
    done, history)``. The metrics log is cut back to the epochs restored (started empty for
    a fresh run), so a resumed run's log reads as an uninterrupted one's."""
    primary = jax.process_index() == 0
    if primary:
        workdir.mkdir(parents=True, exist_ok=True)
    store = checkpoints.TrainingCheckpoints(
        workdir, keep=train_config.keep_checkpoints, metric=metric
    )
    try:
        state, start_epoch = _resume(store, state, programs, meta, train_config.epochs)
    except BaseException:
        store.close()
        raise
    metrics_path = workdir / METRICS_FILE
    history = []
    if start_epoch:
        history = [
            r for r in workdir_lib.read_metrics(metrics_path) if r.get("epoch", 0) <= start_epoch
        ]
    if primary:
        atomic_write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in history))
    return store, state, start_epoch, history


def _check_finite(epoch: int, host: dict[str, np.ndarray]) -> None:
    """Raise FloatingPointError naming the first step of ``epoch`` whose loss is NaN or Inf."""
    if np.all(np.isfinite(host["loss"])):
        return
    bad = int(np.argmin(np.isfinite(host["loss"])))
    parts = {k: float(v[bad]) for k, v in host.items()}
    raise FloatingPointError(
        f"non-finite loss at epoch {epoch + 1}, step {bad + 1} of the epoch: {parts}. "
        f"Lower train.learning_rate, set train.grad_clip, or check the data."
    )


def epoch_record(
    epoch: int,
    steps_per_epoch: int,
    step_metrics: dict,
    val_metrics: list | None,
    val_word_ids_N: np.ndarray | None,
) -> dict:
    """The metrics line of ``epoch`` (0-based): ``epoch`` and ``step`` done, each training
    metric's mean over the epoch's steps as ``train_*``, and with validation chunks the
    validation figures as ``val_*`` and ``val_silhouette``. Raises FloatingPointError for a
    NaN or Inf loss."""
    host = host_metrics(step_metrics)
    _check_finite(epoch, host)
    record = {"epoch": epoch + 1, "step": (epoch + 1) * steps_per_epoch}
    record.update({f"train_{k}": float(np.mean(v)) for k, v in host.items()})
    if val_metrics is not None:
        val = combine_chunks(val_metrics)
        latents = val.pop("latents")
        record.update({f"val_{k}": float(v) for k, v in val.items()})
        record["val_silhouette"] = silhouette_or_none(latents, val_word_ids_N)
    return record


class PendingEpoch(NamedTuple):
    """An epoch dispatched to the device whose host side has not been done yet."""

    index: int
    state: TrainState
    step_metrics: dict
    val_metrics: list | None


@dataclasses.dataclass
class EpochLog:
    """The host side of each finished epoch: its record (:func:`epoch_record`), the history
    and metrics log, a checkpoint when due, the progress bar and the caller's hook."""

    steps_per_epoch: int
    train_config: TrainConfig
    val_word_ids_N: np.ndarray | None
    metric: str  # the checkpoint's ranking metric: val_loss or train_loss
    metrics_path: Path | None  # None: no log on disk (no workdir, or not the primary process)
    store: checkpoints.TrainingCheckpoints | None
    meta: dict
    bar: Any
    on_epoch_end: Callable[[dict], bool | None] | None
    history: list[dict]
    t_start: float = dataclasses.field(default_factory=time.perf_counter)

    def finish(self, epoch: PendingEpoch, *, checkpoint: bool = False) -> bool:
        """Log ``epoch``, checkpoint it when due (or when ``checkpoint``); True = stop."""
        record = epoch_record(
            epoch.index,
            self.steps_per_epoch,
            epoch.step_metrics,
            epoch.val_metrics,
            self.val_word_ids_N,
        )
        record["elapsed_s"] = time.perf_counter() - self.t_start
        self.history.append(record)
        if self.metrics_path is not None:
            _append_line(self.metrics_path, record)
        done = epoch.index + 1
        due = done % self.train_config.checkpoint_every == 0 or done == self.train_config.epochs
        if self.store is not None and (checkpoint or due):
            self.store.save(done, epoch.state, self.meta, {self.metric: record[self.metric]})
        if self.bar is not None:
            _show_progress(self.bar, record)
        return bool(self.on_epoch_end(record)) if self.on_epoch_end is not None else False


def _show_progress(bar, record: dict) -> None:
    postfix = {"loss": f"{record['train_loss']:.4f}"}
    if "val_loss" in record:
        postfix["val"] = f"{record['val_loss']:.4f}"
        if record["val_silhouette"] is not None:
            postfix["sil"] = f"{record['val_silhouette']:.3f}"
    bar.set_postfix(postfix)
    bar.update(1)


def _append_line(path: Path, record: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
