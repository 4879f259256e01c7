"""Checkpoints: the Orbax training store (resume, keep last N + best) and the final model bundle.

Layout of a training workdir ``W`` (the names are :mod:`neuraleq_jax.training.workdir`'s constants)::

    W/config.json        the ExperimentConfig used (JSON)
    W/metrics.jsonl      one JSON line per epoch
    W/checkpoints/<epoch>/{state,meta}   Orbax CheckpointManager steps (numbered by epochs done)
    W/bundle/            the final ModelBundle: params (Orbax), bundle.json, word_model.npz

Every write is atomic (Orbax writes to a temporary directory and renames it; JSON and NPZ
files go through a temporary file and ``os.replace``). Each stored tree carries a SHA-256
digest of its arrays, so a garbled file is reported as corrupt instead of loading wrong numbers.
No pickle is used anywhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from neuraleq_jax.config import TrainConfig
from neuraleq_jax.fileio import atomic_save_npz, atomic_write_text
from neuraleq_jax.model import networks, paramspace
from neuraleq_jax.model.networks import ModelConfig
from neuraleq_jax.training import workdir as workdir_lib

BUNDLE_DIR = workdir_lib.BUNDLE_DIR
BUNDLE_JSON = workdir_lib.BUNDLE_JSON
BUNDLE_PARAMS_DIR = workdir_lib.BUNDLE_PARAMS_DIR
WORD_MODEL_FILE = workdir_lib.WORD_MODEL_FILE
CHECKPOINT_DIR = workdir_lib.CHECKPOINT_DIR
# 2: the word model is a kernel density over each word's training latents; a format-1 bundle's
# word model is a centre and a spread, which this code cannot generate from
FORMAT_VERSION = 2


class CheckpointError(RuntimeError):
    """A checkpoint or bundle is missing, incomplete or corrupt."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint or bundle where one was expected."""


class BundleVersionError(CheckpointError):
    """A bundle written in a newer format than this code reads."""


# ------------------------------------------------------------------ small helpers


def host_array(x) -> np.ndarray:
    """A host copy of ``x``; for arrays spread over processes, this process's replica."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(x.addressable_data(0))
    return np.asarray(x)


def tree_digest(tree) -> str:
    """SHA-256 over every leaf's path, dtype, shape and bytes (host replica of each leaf)."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        array = np.ascontiguousarray(host_array(leaf))
        digest.update(jax.tree_util.keystr(path).encode())
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def abstract_like(tree, sharding: jax.sharding.Sharding):
    """``ShapeDtypeStruct`` leaves with an explicit ``sharding``: the restore target for Orbax."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def _local_checkpointer() -> ocp.StandardCheckpointer:
    """A checkpointer that this process drives alone (bundles are written by one process)."""
    if jax.process_count() == 1:
        return ocp.StandardCheckpointer()
    me = jax.process_index()
    return ocp.StandardCheckpointer(
        multiprocessing_options=ocp.options.MultiprocessingOptions(
            primary_host=me, active_processes={me}
        )
    )


def _default_sharding() -> jax.sharding.Sharding:
    return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])


def summarise_error(error: BaseException | str, limit: int = 200) -> str:
    """One line for a library error: the innermost cause's first line, at most ``limit`` chars.

    Orbax wraps TensorStore's error (one line, e.g. ``OUT_OF_RANGE: Error reading ...``) in an
    exception whose text embeds a ~60-line TensorStore spec; the cause says what went wrong.
    """
    if isinstance(error, BaseException):
        while True:
            inner = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
            if inner is None:
                break
            error = inner
        lines = str(error).strip().splitlines()
        text = f"{type(error).__name__}: {lines[0].strip() if lines else ''}"
    else:
        lines = str(error).strip().splitlines()
        text = lines[0].strip() if lines else ""
    text = text.split(" See full TensorStore details")[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_restore_leftover(unraisable) -> bool:
    value, code = unraisable.exc_value, getattr(unraisable.object, "cr_code", None)
    if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
        return True
    return code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename


@contextlib.contextmanager
def _quiet_restore_leftovers():
    """Silence the leftovers of a failed Orbax restore, reported as unraisable exceptions.

    When a restore fails, TensorStore reads still in flight complete after Orbax's asyncio loop
    has closed (each reports ``RuntimeError: Event loop is closed``), and Orbax's other read
    coroutines are discarded with their own copy of the error (each with a ~60-line TensorStore
    spec): dozens of tracebacks, during and after the restore, that bury the one error raised.
    Exactly those two kinds are dropped; other unraisable exceptions reach the previous hook.
    The filter stays installed after a failure (the leftovers arrive late) and is removed
    after a success.
    """
    previous = sys.unraisablehook
    if getattr(previous, "drops_restore_leftovers", False):
        yield
        return

    def hook(unraisable):
        if not _is_restore_leftover(unraisable):
            previous(unraisable)

    hook.drops_restore_leftovers = True
    sys.unraisablehook = hook
    yield  # an exception propagates from here and leaves the filter in place
    if sys.unraisablehook is hook:
        sys.unraisablehook = previous


def _corrupt(what: str, path: Path, error: BaseException | str, advice: str) -> CheckpointError:
    return CheckpointError(
        f"{what} at {path} is corrupt or incomplete ({summarise_error(error)}). {advice}"
    )


def _bundle_advice(bundle_path: Path) -> str:
    """What rebuilds a damaged bundle: the training command when its checkpoints are there."""
    workdir = bundle_path.parent
    if bundle_path.name == BUNDLE_DIR and (workdir / CHECKPOINT_DIR).is_dir():
        return (
            f"Rerun the training command that wrote it (neuraleq train --workdir {workdir} "
            f"with the same options): it rebuilds the bundle from the newest checkpoint."
        )
    return (
        "No training checkpoints are beside it to rebuild it from: save the model again "
        "(NeuralEQMorphingSystem.save) or retrain."
    )


def _checkpoint_advice(step_dir: Path) -> str:
    return (
        f"Delete {step_dir} and rerun the training command: it resumes from the previous "
        f"checkpoint kept there, or starts over when there is none."
    )


# ------------------------------------------------------------------ model bundle


@dataclasses.dataclass
class ModelBundle:
    """Everything needed to generate with a trained model.

    Attributes:
      params: model parameters (pytree of arrays).
      model_config: the architecture.
      train_config: the training settings.
      layout: the EQ layout the model was trained in.
      vocabulary: the words, in the training order.
      word_model: per-word latent statistics from ``generation.fit_word_model`` (or None).
      step: optimiser steps done.
      metadata: free JSON-ready extras (data set, metrics, timings ...).
    """

    params: Any
    model_config: ModelConfig
    train_config: TrainConfig
    layout: paramspace.EQLayout
    vocabulary: tuple[str, ...]
    word_model: dict[str, np.ndarray] | None = None
    step: int = 0
    metadata: dict = dataclasses.field(default_factory=dict)


def _bundle_json(bundle: ModelBundle, digest: str) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "model_config": json.loads(json.dumps(dataclasses.asdict(bundle.model_config))),
        "train_config": json.loads(json.dumps(dataclasses.asdict(bundle.train_config))),
        "layout": paramspace.layout_to_json(bundle.layout),
        "vocabulary": list(bundle.vocabulary),
        "step": int(bundle.step),
        "metadata": bundle.metadata,
        "params_digest": digest,
        "has_word_model": bundle.word_model is not None,
    }


def save_bundle(directory: str | Path, bundle: ModelBundle) -> Path:
    """Write ``bundle`` to ``directory/bundle`` atomically and return that path.

    The bundle is assembled in a temporary sibling folder and renamed into place, so a crash
    leaves either the old bundle or the new one. Params go through Orbax, configs, vocabulary
    and layout into ``bundle.json``, the word model into ``word_model.npz``.
    """
    if not bundle.vocabulary:
        raise ValueError("bundle.vocabulary is empty; a model bundle needs its words")
    directory = Path(directory).resolve()
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(
            f"cannot save a model bundle under {directory}: it is a file; give a folder "
            f"(the bundle is written to FOLDER/{BUNDLE_DIR})"
        )
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / BUNDLE_DIR
    tmp = directory / f".{BUNDLE_DIR}.tmp-{uuid.uuid4().hex}"
    params = jax.tree.map(host_array, bundle.params)
    try:
        checkpointer = _local_checkpointer()
        checkpointer.save(tmp / BUNDLE_PARAMS_DIR, params)
        checkpointer.wait_until_finished()
        checkpointer.close()
        if bundle.word_model is not None:
            arrays = {k: np.asarray(v) for k, v in bundle.word_model.items()}
            if any(a.dtype == object for a in arrays.values()):
                raise ValueError("word_model arrays must be numeric (no object arrays)")
            atomic_save_npz(tmp / WORD_MODEL_FILE, **arrays)
        atomic_write_text(
            tmp / BUNDLE_JSON, json.dumps(_bundle_json(bundle, tree_digest(params)), indent=2)
        )
        if final.exists():
            old = directory / f".{BUNDLE_DIR}.old-{uuid.uuid4().hex}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _find_bundle(directory: Path) -> Path:
    for candidate in (directory / BUNDLE_DIR, directory):
        if (candidate / BUNDLE_JSON).is_file():
            return candidate
    if not directory.exists():
        raise CheckpointNotFoundError(f"no model bundle at {directory}: the folder does not exist")
    raise CheckpointNotFoundError(
        f"no model bundle in {directory}: expected {directory / BUNDLE_DIR / BUNDLE_JSON}. Train "
        f"one with `python -m neuraleq_jax.train --workdir {directory}` (or save one with "
        f"checkpoints.save_bundle)."
    )


def _check_format_version(meta, path: Path) -> None:
    """Refuse a bundle written by a newer neuraleq_jax (its layout may mean something else) or
    by one whose word model this version cannot use."""
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"format_version is {version!r}, expected a positive integer")
    if version < FORMAT_VERSION:
        raise BundleVersionError(
            f"the model bundle at {path} has format_version {version}: its word model draws "
            f"variations around a centre, which this neuraleq_jax (format {FORMAT_VERSION}: "
            f"each word's latent density) cannot use. Retrain it: `python -m neuraleq_jax.train "
            f"--workdir NEW_WORKDIR` with the same --config."
        )
    if version > FORMAT_VERSION:
        raise BundleVersionError(
            f"the model bundle at {path} has format_version {version}, but this neuraleq_jax "
            f"reads format versions up to {FORMAT_VERSION}. Upgrade neuraleq_jax, or retrain "
            f"the model with this version."
        )


def load_bundle(directory: str | Path) -> ModelBundle:
    """Load the bundle written by :func:`save_bundle` (``directory`` or ``directory/bundle``).

    Raises:
      CheckpointNotFoundError: nothing there.
      BundleVersionError: the bundle's ``format_version`` is newer than ``FORMAT_VERSION``.
      CheckpointError: the bundle is incomplete, garbled, or fails its digest check.
    """
    path = _find_bundle(Path(directory).resolve())
    advice = _bundle_advice(path)
    try:
        meta = json.loads((path / BUNDLE_JSON).read_text())
        _check_format_version(meta, path / BUNDLE_JSON)
        model_config = ModelConfig(**meta["model_config"])
        train_config = TrainConfig(**meta["train_config"])
        layout = paramspace.layout_from_json(meta["layout"])
        vocabulary = tuple(meta["vocabulary"])
        digest = meta["params_digest"]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as error:
        raise _corrupt("model bundle description", path / BUNDLE_JSON, error, advice) from None
    shapes = jax.eval_shape(lambda: networks.init_params(model_config, jax.random.key(0)))
    target = abstract_like(shapes, _default_sharding())
    checkpointer = _local_checkpointer()
    try:
        with _quiet_restore_leftovers():
            params = checkpointer.restore(path / BUNDLE_PARAMS_DIR, target)
    except Exception as error:  # orbax/tensorstore raise many types for damaged files
        raise _corrupt("model bundle parameters", path / BUNDLE_PARAMS_DIR, error, advice) from None
    finally:
        checkpointer.close()
    if tree_digest(params) != digest:
        raise _corrupt(
            "model bundle parameters",
            path / BUNDLE_PARAMS_DIR,
            "the stored digest does not match the parameters read back",
            advice,
        )
    word_model = None
    if meta.get("has_word_model"):
        try:
            with np.load(path / WORD_MODEL_FILE, allow_pickle=False) as archive:
                word_model = {key: archive[key] for key in archive.files}
        except Exception as error:
            raise _corrupt("word model", path / WORD_MODEL_FILE, error, advice) from None
    return ModelBundle(
        params=params,
        model_config=model_config,
        train_config=train_config,
        layout=layout,
        vocabulary=vocabulary,
        word_model=word_model,
        step=int(meta.get("step", 0)),
        metadata=dict(meta.get("metadata", {})),
    )


# ------------------------------------------------------------------ training checkpoints


class TrainingCheckpoints:
    """Orbax ``CheckpointManager`` for training: train state + JSON meta, numbered by epochs done.

    Keeps the ``keep`` latest checkpoints and the best one by ``metric`` (lower is better).
    The meta holds the experiment config, vocabulary, layout and a digest of the state.
    """

    def __init__(self, directory: str | Path, *, keep: int = 3, metric: str = "val_loss"):
        self.directory = Path(directory).resolve() / CHECKPOINT_DIR
        self.metric = metric
        policy = ocp.checkpoint_managers.AnyPreservationPolicy(
            [
                ocp.checkpoint_managers.LatestN(n=keep),
                # BestN keeps the *last* n after sorting; reverse=True sorts descending → lowest kept
                ocp.checkpoint_managers.BestN(get_metric_fn=lambda m: m[metric], reverse=True, n=1),
            ]
        )
        # best_fn makes the manager write each step's metrics to disk, so the best checkpoint
        # is still known (and kept) after a restart
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policy, create=True, best_fn=lambda m: m[metric], best_mode="min"
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_epoch(self) -> int | None:
        """Epochs done at the newest complete checkpoint, or None when there is none."""
        self.manager.reload()
        return self.manager.latest_step()

    def all_epochs(self) -> list[int]:
        self.manager.reload()
        return sorted(self.manager.all_steps())

    def save(self, epoch: int, state, meta: dict, metrics: dict[str, float]) -> None:
        """Start saving ``state`` after ``epoch`` epochs (asynchronous; see :meth:`wait`)."""
        meta = dict(meta, epoch=int(epoch), state_digest=tree_digest(state))
        self.manager.save(
            int(epoch),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
            metrics={k: float(v) for k, v in metrics.items()},
        )

    def restore(self, epoch: int, abstract_state) -> tuple[Any, dict]:
        """Restore ``(state, meta)``; ``abstract_state`` gives the shapes and target shardings."""
        step_dir = self.directory / str(epoch)
        try:
            with _quiet_restore_leftovers():
                restored = self.manager.restore(
                    int(epoch),
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
                    ),
                )
            state, meta = restored.state, restored.meta
        except Exception as error:
            raise _corrupt(
                "training checkpoint", step_dir, error, _checkpoint_advice(step_dir)
            ) from None
        if not isinstance(meta, dict) or tree_digest(state) != meta.get("state_digest"):
            raise _corrupt(
                "training checkpoint",
                step_dir,
                "the stored digest does not match the state read back",
                _checkpoint_advice(step_dir),
            )
        return state, meta

    def best_epoch(self) -> int | None:
        """The kept checkpoint with the lowest metric, or None without metrics."""
        self.manager.reload()
        return self.manager.best_step()

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
