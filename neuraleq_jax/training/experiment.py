"""One training run of an :class:`~neuraleq_jax.config.ExperimentConfig` in a workdir: the
library behind ``python -m neuraleq_jax.train``.

:func:`run` checks everything first (the workdir, the data, the devices, a config already in
the workdir), then locks the workdir, stores the config, trains (resuming from the newest
checkpoint), evaluates the held-out part and writes the model bundle. Signals stop a run
cleanly through :func:`stop_on_signals`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from neuraleq_jax import config as config_lib
from neuraleq_jax import generation
from neuraleq_jax.config import DistributedConfig, ExperimentConfig
from neuraleq_jax.data import vocabulary
from neuraleq_jax.data.registry import build_datasets
from neuraleq_jax.training import checkpoints, trainer
from neuraleq_jax.training import workdir as workdir_lib

CONFIG_FILE = workdir_lib.CONFIG_FILE


class UsageError(ValueError):
    """The command line, config, data or device request cannot work as given (exit 2)."""


# fields that may differ between the run that wrote a workdir and the one resuming it
RESUMABLE_CHANGES = (
    "train.epochs",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.variation_ratio",
    "train.devices",
    "distributed.coordinator_address",
    "distributed.num_processes",
    "distributed.process_id",
    "distributed.local_devices",
)


def setup_jax(distributed: DistributedConfig) -> None:
    """Configure jax before its backend starts: simulated devices, the persistent compilation
    cache (``NEURALEQ_JAX_CACHE_DIR``; ``off`` disables it), gloo, jax.distributed."""
    import jax

    if distributed.local_devices:
        jax.config.update("jax_num_cpu_devices", distributed.local_devices)
    cache = os.environ.get(
        "NEURALEQ_JAX_CACHE_DIR", str(Path.home() / ".cache" / "neuraleq_jax" / "xla")
    )
    if cache.lower() != "off":  # a resumed or repeated run skips most of its compile time
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if distributed.enabled:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=distributed.coordinator_address,
            num_processes=distributed.num_processes,
            process_id=distributed.process_id,
        )


# ------------------------------------------------------------------ checks before the run


def check_resumable(workdir: Path, config: ExperimentConfig) -> bool:
    """Whether ``workdir/config.json`` must be (re)written for ``config``: False when it holds
    exactly ``config``. Raises ValueError when it holds a run that ``config`` cannot resume."""
    path = workdir / CONFIG_FILE
    if not path.is_file():
        return True
    previous = config_lib.load_json(path)
    differences = config_lib.differences(previous, config)
    changed = {k: v for k, v in differences.items() if k not in RESUMABLE_CHANGES}
    if changed:
        listing = "; ".join(f"{k}: {a!r} → {b!r}" for k, (a, b) in changed.items())
        raise ValueError(
            f"{workdir} holds a run with another config ({listing}). Rerun "
            f"with the same options to resume, or use a new --workdir."
        )
    return bool(differences)


def prepare_workdir(workdir: Path, config: ExperimentConfig) -> None:
    """Store ``config`` in ``workdir``, or check it against the one already there (a file that
    already holds ``config`` is left as it is)."""
    if check_resumable(workdir, config):
        config_lib.save_json(config, workdir / CONFIG_FILE)


def check_workdir(workdir: Path) -> None:
    """Refuse a workdir that is a file (UsageError) or where nothing can be written
    (NotWritableError, saying whether a finished model is there to use as it is)."""
    if workdir.exists() and not workdir.is_dir():
        raise UsageError(
            f"--workdir {workdir} is a file; give a folder (new or a training workdir)"
        )
    bundle = workdir / workdir_lib.BUNDLE_DIR
    hint = (
        f"The run there is finished: its model in {bundle} is usable as it is; to train "
        f"further, copy the folder somewhere writable."
        if (bundle / workdir_lib.BUNDLE_JSON).is_file()
        else "Use a writable --workdir, or copy this one somewhere writable to resume it."
    )
    workdir_lib.check_writable(
        workdir, purpose="the training workdir's checkpoints and metrics", hint=hint
    )


def load_checked_datasets(config: ExperimentConfig, progress: bool = False):
    """``(train, validation, test)`` after every check :func:`trainer.fit` would make
    (data, batch size, devices); a failure raises :class:`UsageError`. ``progress``: bars on
    stderr while the data set's slow steps run (a crowd vocabulary's curve fits)."""
    try:
        train_ds, val_ds, test_ds = build_datasets(config.data, progress=progress)
        trainer.check_run(train_ds, val_ds, config.model, config.train)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise UsageError(str(error)) from error
    return train_ds, val_ds, test_ds


# ------------------------------------------------------------------ the word model of a run


def fit_word_model_for_run(
    params,
    model_config,
    train_config: config_lib.TrainConfig,
    train_ds,
    *,
    val_ds=None,
    seed: int = 0,
) -> dict:
    """The word model of a trained run, as its bundle stores it: :func:`generation.fit_word_model`
    on the training settings, its kernel bandwidth calibrated on ``val_ds`` (None: on a fifth
    of the training settings) and scaled by ``train_config.variation_ratio``, plus the words'
    sources and the word map (:func:`vocabulary.bundle_arrays`). The trainer, the facade and
    scripts that refit a word model all call this, so the config reaches the word model in
    one place."""
    word_model = generation.fit_word_model(
        params,
        model_config,
        train_ds,
        validation=val_ds,
        seed=seed,
        bandwidth_scale=train_config.variation_ratio,
        freq_q_crossings=train_config.word_model_freq_q_crossings,
    )
    return {**word_model, **vocabulary.bundle_arrays(train_ds, word_model)}


# ------------------------------------------------------------------ stopping on signals


class StopNow(KeyboardInterrupt):
    """A second stop signal: end at once (the newest checkpoint on disk is kept)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals(
    signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[list[int]]:
    """While the block runs, the first of ``signals`` only records itself in the yielded list
    (the training loop polls it and stops after checkpointing the running epoch); a second
    raises :class:`StopNow`. The previous handlers come back afterwards. Outside the main
    thread (where Python cannot set handlers) nothing is installed."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, _frame):
        if received:
            raise StopNow(signum)
        received.append(signum)
        # os.write, not print: the handler may interrupt a write to sys.stderr (the progress
        # bar), and the buffered stream refuses a reentrant call; "\n" leaves the bar's line
        os.write(
            2,
            f"\n{signal.Signals(signum).name}: stopping after this epoch's checkpoint "
            f"(signal again to stop at once)\n".encode(),
        )

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# ------------------------------------------------------------------ the run


def run(
    config: ExperimentConfig,
    workdir: str | Path,
    *,
    progress: bool = True,
    stop_after_epoch: int | None = None,
    handle_signals: bool = False,
    fit_word_model: Callable[..., dict] | None = None,
) -> dict:
    """Train per ``config`` in ``workdir`` (resuming), write the bundle; return the summary.

    Everything is checked before the workdir is touched; the workdir is then locked for the
    run (:class:`workdir.WorkdirLock`). ``stop_after_epoch`` ends the run early after that
    epoch (no bundle is written then), which is how an interrupted run is simulated. With
    ``handle_signals`` SIGINT/SIGTERM stop the run after checkpointing the running epoch;
    the summary then has ``stopped_by`` (the signal number). ``fit_word_model`` replaces
    :func:`fit_word_model_for_run` (same arguments).
    """
    import jax

    workdir = Path(workdir).expanduser().resolve()
    check_workdir(workdir)
    datasets = load_checked_datasets(config, progress)
    options = (progress, stop_after_epoch, handle_signals, fit_word_model)
    if jax.process_index() != 0:
        return _train(config, workdir, datasets, *options)
    if workdir.is_dir():
        check_resumable(workdir, config)  # before the lock file is written
    workdir.mkdir(parents=True, exist_ok=True)
    with workdir_lib.WorkdirLock(workdir):
        prepare_workdir(workdir, config)
        return _train(config, workdir, datasets, *options)


def _fit(
    config: ExperimentConfig, workdir: Path, datasets, progress, stop_after_epoch, handle_signals
):
    """``trainer.fit`` of the run: ``(result, signals received)``."""
    train_ds, val_ds, _test_ds = datasets
    hook = None
    if stop_after_epoch is not None:
        hook = lambda record: record["epoch"] >= stop_after_epoch
    signals = stop_on_signals() if handle_signals else contextlib.nullcontext([])
    with signals as received:
        result = trainer.fit(
            train_ds,
            config.model,
            config.train,
            val_ds=val_ds,
            workdir=workdir,
            progress=progress,
            on_epoch_end=hook,
            stop_requested=lambda: bool(received),
            metadata={"experiment": config.name},
        )
    return result, received


def _train(
    config: ExperimentConfig,
    workdir: Path,
    datasets,
    progress: bool,
    stop_after_epoch: int | None,
    handle_signals: bool,
    fit_word_model: Callable[..., dict] | None,
) -> dict:
    """Fit, then (for a complete run) evaluate the held-out part and write the bundle."""
    import jax
    import numpy as np

    t0 = time.perf_counter()
    result, received = _fit(config, workdir, datasets, progress, stop_after_epoch, handle_signals)
    summary = {
        "name": config.name,
        "workdir": str(workdir),
        "epochs_done": result.epochs_done,
        "step": int(checkpoints.host_array(result.state.step)),
        "wall_s": time.perf_counter() - t0,
        **result.timings,
    }
    if result.history:
        summary["last_epoch"] = result.history[-1]
    if received:
        summary["stopped_by"] = received[0]
        return summary
    if result.epochs_done < config.train.epochs:
        summary["stopped_early"] = True
        return summary
    train_ds, val_ds, test_ds = datasets
    params = jax.tree.map(lambda x: np.asarray(checkpoints.host_array(x)), result.params)
    held_out = test_ds if test_ds is not None else val_ds
    if held_out is not None:
        summary["held_out"] = trainer.evaluate_dataset(
            params, config.model, config.train, held_out, reference_ds=train_ds
        )
    if jax.process_index() == 0:
        bundle = _bundle(
            config, params, datasets, summary, fit_word_model or fit_word_model_for_run
        )
        summary["bundle"] = str(checkpoints.save_bundle(workdir, bundle))
    return summary


def _bundle(config: ExperimentConfig, params, datasets, summary: dict, fit_word_model):
    """The model bundle of a finished run, with its word model."""
    train_ds, val_ds, test_ds = datasets
    # the kernel bandwidth is calibrated on the validation part, unless that is the part
    # evaluated (no test part): then on a fifth of the training part
    word_model = fit_word_model(
        params,
        config.model,
        config.train,
        train_ds,
        val_ds=val_ds if test_ds is not None else None,
    )
    return checkpoints.ModelBundle(
        params=params,
        model_config=config.model,
        train_config=config.train,
        layout=train_ds.layout,
        vocabulary=train_ds.vocabulary,
        word_model=word_model,
        step=summary["step"],
        metadata={
            "experiment": config_lib.to_dict(config),
            "held_out": summary.get("held_out"),
            "seed": config.train.seed,
        },
    )
