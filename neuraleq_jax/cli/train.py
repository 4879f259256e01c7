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

The run itself is :func:`neuraleq_jax.training.experiment.run` (data from :mod:`neuraleq_jax.data.registry`,
the loop in :mod:`neuraleq_jax.training.trainer`); this module parses the command line and prints.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import traceback
from collections.abc import Sequence

from neuraleq_jax import config as config_lib
from neuraleq_jax.config import ExperimentConfig
from neuraleq_jax.training import experiment
from neuraleq_jax.training.experiment import StopNow, UsageError, setup_jax

EXIT_RUNTIME, EXIT_USAGE = 1, 2


def _verdict(held: dict) -> str:
    """The held-out figures a newcomer asks about, each beside its goal and whether it is met."""
    from neuraleq_jax.metrics.goals import GOALS

    bounds = {key: (kind, bound) for key, _label, kind, bound in GOALS}
    parts = []
    for name, value, key, unit in (
        ("silhouette", held.get("silhouette"), "latent_silhouette", ""),
        ("response error", held.get("response_db"), "response_error_mean_db", " dB"),
    ):
        kind, bound = bounds[key]
        if value is None:
            parts.append(f"{name} n/a (goal {kind} {bound:g}{unit})")
            continue
        met = value >= bound if kind == ">=" else value <= bound
        sign = "≥" if kind == ">=" else "≤"
        parts.append(
            f"{name} {value:.2f}{unit} (goal {sign} {bound:g}{unit}, {'met' if met else 'MISSED'})"
        )
    return "held-out: " + ", ".join(parts)


def _format_summary(summary: dict) -> str:
    held = summary.get("held_out")
    lines = [_verdict(held)] if held else []
    lines += [
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
    if held:
        f = {k: ("n/a" if v is None else f"{v:.4f}") for k, v in held.items()}
        lines.append(
            f"held-out details: silhouette {f['silhouette']}, response error "
            f"{f['response_db']} dB RMS, "
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


def _run_command(argv: list[str]) -> dict | None:
    """Do what ``argv`` asks; the training summary, or None when only help or the config was
    printed."""
    config, args = parse_args(argv)
    if args.help:
        sys.stdout.write(format_help(args.config))
        return None
    if args.print_config:
        print(json.dumps(config_lib.to_dict(config), indent=2))
        return None
    _show_notes()
    setup_jax(config.distributed)
    return experiment.run(
        config,
        args.workdir,
        progress=not args.quiet,
        stop_after_epoch=args.stop_after_epoch,
        handle_signals=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        summary = _run_command(argv)
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
        if "--debug" in argv:
            traceback.print_exc()
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(error, UsageError) else EXIT_RUNTIME
    if summary is None:
        return 0
    if "stopped_by" in summary:
        print(
            f"stopped at epoch {summary['epochs_done']}; rerun the same command to resume",
            file=sys.stderr,
        )
        return 128 + summary["stopped_by"]
    import jax

    if jax.process_index() == 0:
        print(_format_summary(summary))
    return 0
