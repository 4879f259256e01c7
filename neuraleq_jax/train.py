"""Command-line training: ``python -m neuraleq_jax.train --config synthetic --workdir W``.

Every config field can be overridden, e.g. ``--train.epochs=20 --model.encoder=transformer
--data.split_fractions=0.8,0.1,0.1`` (a bare ``--epochs=20`` works where the name is unique);
``--help`` lists them all with their values. The workdir receives ``config.json``,
``metrics.jsonl``, Orbax checkpoints and, at the end, the model bundle that
``checkpoints.load_bundle(W)`` reads. Rerunning the same command resumes from the newest
checkpoint (changing ``train.epochs`` extends or shortens the run).

The command, the data and the devices are checked before anything is written to the workdir.
One run at a time holds a workdir (an exclusive lock on ``W/.lock``). Ctrl-C (SIGINT) or
SIGTERM lets the running epoch finish, saves a checkpoint of it and stops; a second signal
stops at once.

Exit status:
  0   trained (or stopped by ``--stop_after_epoch``)
  1   the run could not go on: workdir in use, not writable or holding another run's config,
      damaged files, a non-finite loss, any other runtime failure
  2   bad command line, config, data or device request (nothing was written)
  130 / 143  stopped by SIGINT / SIGTERM after saving a checkpoint; rerun to resume
Errors are one line on stderr; ``--debug`` prints the traceback too.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from neuraleq_jax import config as config_lib
from neuraleq_jax import workdir as workdir_lib
from neuraleq_jax.config import DataConfig, DistributedConfig, ExperimentConfig
from neuraleq_jax.data import EQDataset

CONFIG_FILE = "config.json"
EXIT_RUNTIME, EXIT_USAGE = 1, 2


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


def _synthetic(data: DataConfig) -> EQDataset:
    from neuraleq_jax.synthetic import make_synthetic
    from neuraleq_jax.vocabulary import with_sources

    return with_sources(make_synthetic(per_word=data.per_word, seed=data.data_seed), "synthetic")


def _safe(data: DataConfig) -> EQDataset:
    from neuraleq_jax.safedb import load_safe_db
    from neuraleq_jax.vocabulary import with_sources

    dataset, report = load_safe_db(
        data.path or None,
        layout=data.layout,
        min_examples=data.min_examples,
        words=data.words or None,
    )
    return with_sources(dataset, "safe")


def _curves(data: DataConfig) -> EQDataset:
    from neuraleq_jax.curves import load_curve_dataset

    dataset, _curves_read, _fit = load_curve_dataset(
        data.path, max_rms_db=data.max_fit_rms_db, seed=data.data_seed
    )
    if data.words:
        from neuraleq_jax.data import from_arrays

        keep = [i for i, word in enumerate(dataset.words) if word in data.words]
        dataset = from_arrays(
            dataset.settings[keep],
            [dataset.words[i] for i in keep],
            vocabulary=data.words,
            layout=dataset.layout,
        )
    return dataset


def _audealize(data: DataConfig) -> EQDataset:
    from neuraleq_jax.crowd import audealize_dataset

    dataset, _read, _fit = audealize_dataset(
        data.path,
        per_word=data.per_word,
        seed=data.data_seed,
        spread_scale=data.spread_scale,
        words=data.words,
    )
    return dataset


def _crowd(data: DataConfig) -> EQDataset:
    from neuraleq_jax.crowd import crowd_dataset

    return crowd_dataset(
        data.path,
        None,
        per_word=data.per_word,
        min_examples=data.min_examples,
        seed=data.data_seed,
        spread_scale=data.spread_scale,
    )


# dataset name → loader (config.DATASET_NAMES lists the same names)
DATASETS: dict[str, Callable[[DataConfig], EQDataset]] = {
    "synthetic": _synthetic,
    "safe": _safe,
    "curves": _curves,
    "audealize": _audealize,
    "crowd": _crowd,
}


def build_datasets(data: DataConfig) -> tuple[EQDataset, EQDataset | None, EQDataset | None]:
    """``(train, validation, test)`` for ``data``; split by contributor when the data has them."""
    from neuraleq_jax.data import grouped_split, stratified_split

    if data.dataset not in DATASETS:
        raise ValueError(f"unknown data.dataset {data.dataset!r}; known: {', '.join(DATASETS)}")
    dataset = DATASETS[data.dataset](data)
    split = grouped_split if dataset.contributors is not None else stratified_split
    parts = split(dataset, data.split_fractions, data.split_seed)
    parts = [p if len(p) else None for p in parts]
    return parts[0], parts[1], parts[2] if len(parts) > 2 else None


def setup_jax(distributed: DistributedConfig) -> None:
    """Configure jax before its backend starts: simulated devices, gloo, jax.distributed."""
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
    from neuraleq_jax.checkpoints import BUNDLE_DIR, BUNDLE_JSON

    finished = (workdir / BUNDLE_DIR / BUNDLE_JSON).is_file()
    hint = (
        "The run there is finished: its model in "
        f"{workdir / BUNDLE_DIR} is usable as it "
        "is; to train further, copy the folder somewhere writable."
        if finished
        else "Use a writable --workdir, or copy this one somewhere writable to resume it."
    )
    workdir_lib.check_writable(
        workdir, purpose="the training workdir's checkpoints and metrics", hint=hint
    )


def fit_word_model(
    params,
    model_config,
    train_config: config_lib.TrainConfig,
    train_ds,
    *,
    val_ds=None,
    seed: int = 0,
) -> dict:
    """The word model as a training run fits it: :func:`generation.fit_word_model` on the
    training settings, its kernel bandwidth calibrated on ``val_ds`` (None: on a fifth of the
    training settings) and scaled by ``train_config.variation_ratio``. The trainer, the facade
    and scripts that refit a word model all call this, so the config reaches the word model in
    one place."""
    from neuraleq_jax import generation, vocabulary

    word_model = generation.fit_word_model(
        params,
        model_config,
        train_ds,
        validation=val_ds,
        seed=seed,
        bandwidth_scale=train_config.variation_ratio,
    )
    # the words' sources and the word map travel in the bundle with the word model
    return {**word_model, **vocabulary.bundle_arrays(train_ds, word_model)}


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


def load_checked_datasets(config: ExperimentConfig):
    """``(train, validation, test)`` after every check :func:`training.fit` would make
    (data, batch size, devices); a failure raises :class:`UsageError`."""
    from neuraleq_jax import training

    try:
        train_ds, val_ds, test_ds = build_datasets(config.data)
        training.check_run(train_ds, val_ds, config.model, config.train)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise UsageError(str(error)) from error
    return train_ds, val_ds, test_ds


def run(
    config: ExperimentConfig,
    workdir: str | Path,
    *,
    progress: bool = True,
    stop_after_epoch: int | None = None,
    handle_signals: bool = False,
) -> dict:
    """Train per ``config`` in ``workdir`` (resuming), write the bundle; return the summary.

    Everything is checked before the workdir is touched; the workdir is then locked for the
    run (:class:`workdir.WorkdirLock`). ``stop_after_epoch`` ends the run early after that
    epoch (no bundle is written then), which is how an interrupted run is simulated. With
    ``handle_signals`` SIGINT/SIGTERM stop the run after checkpointing the running epoch;
    the summary then has ``stopped_by`` (the signal number).
    """
    import jax

    workdir = Path(workdir).expanduser().resolve()
    primary = jax.process_index() == 0
    check_workdir(workdir)
    datasets = load_checked_datasets(config)
    if not primary:
        return _train(config, workdir, datasets, progress, stop_after_epoch, handle_signals)
    if workdir.is_dir():
        check_resumable(workdir, config)  # before the lock file is written
    workdir.mkdir(parents=True, exist_ok=True)
    with workdir_lib.WorkdirLock(workdir):
        prepare_workdir(workdir, config)
        return _train(config, workdir, datasets, progress, stop_after_epoch, handle_signals)


def _train(
    config: ExperimentConfig,
    workdir: Path,
    datasets,
    progress: bool,
    stop_after_epoch: int | None,
    handle_signals: bool,
) -> dict:
    """Fit, then (for a complete run) evaluate the held-out part and write the bundle."""
    import jax
    import numpy as np

    from neuraleq_jax import checkpoints, training

    train_ds, val_ds, test_ds = datasets
    hook = None
    if stop_after_epoch is not None:
        hook = lambda record: record["epoch"] >= stop_after_epoch
    t0 = time.perf_counter()
    signals = stop_on_signals() if handle_signals else contextlib.nullcontext([])
    with signals as received:
        result = training.fit(
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
    params = jax.tree.map(lambda x: np.asarray(checkpoints.host_array(x)), result.params)
    held_out = test_ds if test_ds is not None else val_ds
    if held_out is not None:
        summary["held_out"] = training.evaluate_dataset(
            params, config.model, config.train, held_out, reference_ds=train_ds
        )
    if jax.process_index() == 0:
        # the kernel bandwidth is calibrated on the validation part, unless that is the part
        # evaluated (no test part): then on a fifth of the training part
        word_model = fit_word_model(
            params,
            config.model,
            config.train,
            train_ds,
            val_ds=val_ds if test_ds is not None else None,
        )
        bundle = checkpoints.ModelBundle(
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
        summary["bundle"] = str(checkpoints.save_bundle(workdir, bundle))
    return summary


def _format_summary(summary: dict) -> str:
    lines = [
        f"{summary['name']}: {summary['epochs_done']} epochs ({summary['step']} steps) in "
        f"{summary['wall_s']:.1f} s (compile {summary['compile_s']:.1f} s, epoch loop "
        f"{summary['train_s']:.2f} s for {summary['epochs_run']} epochs)"
    ]
    last = summary.get("last_epoch")
    if last:
        parts = [f"train loss {last['train_loss']:.4f}"]
        if "val_loss" in last:
            parts.append(f"val loss {last['val_loss']:.4f}")
        if last.get("val_silhouette") is not None:
            parts.append(f"val silhouette {last['val_silhouette']:.3f}")
        lines.append("last epoch: " + ", ".join(parts))
    held = summary.get("held_out")
    if held:
        f = {k: ("n/a" if v is None else f"{v:.4f}") for k, v in held.items()}
        lines.append(
            f"held-out: silhouette {f['silhouette']}, response error {f['response_db']} dB RMS, "
            f"unit MSE gain {f['recon_gain']} (mean predictor {f['mean_baseline_gain']}), "
            f"freq {f['recon_freq']} ({f['mean_baseline_freq']}), Q {f['recon_q']} "
            f"({f['mean_baseline_q']})"
        )
    if "bundle" in summary:
        lines.append(f"bundle: {summary['bundle']}")
    if summary.get("stopped_early"):
        lines.append("stopped early; rerun the same command to resume")
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line, exit 2) instead of printing usage and exiting."""

    def error(self, message):
        raise UsageError(f"{message} (see --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m neuraleq_jax.train",
        add_help=False,
        allow_abbrev=False,
        description="Train a neuraleq_jax model. Any config field can be overridden with "
        "--section.field=value (sections: model, train, data, distributed).",
    )
    parser.add_argument(
        "-h",
        "--help",
        action="store_true",
        help="show this help, with every config field of --config, and exit",
    )
    parser.add_argument(
        "--config",
        default="synthetic",
        help="preset name in configs/ or a path to a .py/.json config (default synthetic)",
    )
    parser.add_argument(
        "--workdir", help="folder for checkpoints, metrics and the model (required to train)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--print_config", action="store_true", help="print the resolved config as JSON and exit"
    )
    parser.add_argument(
        "--stop_after_epoch",
        type=int,
        default=None,
        help="stop after this epoch (simulates an interruption)",
    )
    parser.add_argument("--debug", action="store_true", help="on an error, print the traceback too")
    return parser


def format_help(preset: str = "synthetic") -> str:
    """The full help of the training command: its options, then every config field as
    ``--section.field=VALUE`` with its value in ``preset``, and the exit codes."""
    lines = [
        _parser().format_help().rstrip(),
        "",
        f"config fields (values of --config {preset}; "
        f"override with --section.field=VALUE, lists comma-separated):",
    ]
    try:
        config = config_lib.load_preset(preset)
    except ValueError as error:
        config, lines[-1] = ExperimentConfig(), f"config fields (defaults; {error}):"
    lines.append(f"  --name={config.name}")
    for section in config_lib.SECTIONS:
        part = getattr(config, section)
        for field in dataclasses.fields(part):
            value = getattr(part, field.name)
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
            lines.append(f"  --{section}.{field.name}={shown}")
    lines += [
        "",
        f"presets: {', '.join(config_lib.available_presets()) or '(none found)'}",
        "",
        "exit status: 0 done, 1 runtime failure (workdir busy/not writable/other config, "
        "damaged files, non-finite loss), 2 bad command line/config/data, 130/143 "
        "stopped by SIGINT/SIGTERM after a checkpoint (rerun to resume)",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str]) -> tuple[ExperimentConfig, argparse.Namespace]:
    """``(config, options)`` from the command line; UsageError for anything unusable."""
    args, rest = _parser().parse_known_args(argv)
    if args.help:
        return ExperimentConfig(), args
    try:
        config = config_lib.load_preset(args.config)
        config = config_lib.apply_overrides(config, config_lib.parse_overrides(rest))
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from error
    if args.workdir is None and not args.print_config:
        raise UsageError(
            "--workdir is required: the folder for checkpoints, metrics and the model (see --help)"
        )
    return config, args


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if not isinstance(error, (ValueError, OSError, RuntimeError, FloatingPointError)):
        text = f"{type(error).__name__}: {text}"
    return text if len(text) <= 600 else text[:600] + " … (--debug shows all)"


def _show_notes() -> None:
    """Library notes (a lock taken over, a cut-off metrics line) as ``note: …`` lines."""
    logger = logging.getLogger("neuraleq_jax")
    for handler in list(logger.handlers):
        if getattr(handler, "neuraleq_notes", False):  # bound to an earlier sys.stderr
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("note: %(message)s"))
    handler.neuraleq_notes = True
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        config, args = parse_args(argv)
        if args.help:
            sys.stdout.write(format_help(args.config))
            return 0
        if args.print_config:
            print(json.dumps(config_lib.to_dict(config), indent=2))
            return 0
        _show_notes()
        setup_jax(config.distributed)
        summary = run(
            config,
            args.workdir,
            progress=not args.quiet,
            stop_after_epoch=args.stop_after_epoch,
            handle_signals=True,
        )
    except StopNow as stop:
        print(
            f"stopped at once by {stop}; the newest checkpoint on disk is kept; rerun the "
            f"same command to resume",
            file=sys.stderr,
        )
        return 128 + stop.signum
    except KeyboardInterrupt:
        print(
            "interrupted; the newest checkpoint on disk is kept; rerun the same command to resume",
            file=sys.stderr,
        )
        return 128 + signal.SIGINT
    except Exception as error:
        if debug:
            traceback.print_exc()
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(error, UsageError) else EXIT_RUNTIME
    import jax

    if "stopped_by" in summary:
        print(
            f"stopped at epoch {summary['epochs_done']}; rerun the same command to resume",
            file=sys.stderr,
        )
        return 128 + summary["stopped_by"]
    if jax.process_index() == 0:
        print(_format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
