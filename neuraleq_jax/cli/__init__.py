"""The ``neuraleq`` command: train, generate, morph, explore, apply, plot, evaluate, bench.

Every subcommand except ``train`` and ``bench`` uses the trained model in ``--workdir``
(default ``runs/synthetic``, or ``$NEURALEQ_WORKDIR``).

Failures print one line on stderr, ``neuraleq COMMAND: what went wrong``, and exit with

- 2: the command line is wrong: an unknown option or a bad value, an unknown word, an input
  file (audio, preset) that does not exist or cannot be read as one, an output that exists
  (without ``--overwrite``) or whose format cannot be told;
- 1: the command is right but could not be carried out: no trained model in ``--workdir`` or
  a damaged or too new one, a file-system error (permissions, full disk), peaks refused by
  ``--peaks error``, or an unexpected error;
- 130 / 143: interrupted by Ctrl-C (SIGINT) / stopped by SIGTERM; a file being written is
  removed, an earlier one at the same path is left as it was;
- 141 (128 + SIGPIPE, as other Unix tools), quietly: the reader of the output went away
  (``neuraleq generate warm -n 1000 | head``).

``neuraleq --debug COMMAND ...`` prints the traceback as well. ``train`` and ``bench`` pass
their arguments on and return the exit status of the module they run; ``evaluate`` takes the
options of ``python -m neuraleq_jax.evaluate`` (its ``--help`` lists them).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from neuraleq_jax.cli import audio_presets, generation, tools, words
from neuraleq_jax.cli.audio_presets import apply_summary
from neuraleq_jax.cli.common import (
    BAD_USAGE,
    DEFAULT_WORKDIR,
    FAILED,
    FORMATS,
    INTERRUPTED,
    PRESET_SUFFIXES,
    TERMINATED,
    CommandError,
    Commands,
    Parser,
)
from neuraleq_jax.cli.common import load_system as _load_system
from neuraleq_jax.cli.stopping import StopSignals, Terminated
from neuraleq_jax.fileio import is_no_space, no_space_message

BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout went away (quietly)

__all__ = [
    "BAD_USAGE",
    "BROKEN_PIPE",
    "DEFAULT_WORKDIR",
    "FAILED",
    "FORMATS",
    "INTERRUPTED",
    "PRESET_SUFFIXES",
    "TERMINATED",
    "CommandError",
    "apply_summary",
    "build_parser",
    "main",
]

# the order of ``neuraleq --help``
_SUBCOMMANDS = (
    tools.add_train,
    generation.add_generate,
    generation.add_morph,
    generation.add_explore,
    audio_presets.add_apply,
    words.add_plot,
    tools.add_evaluate,
    words.add_words,
    words.add_describe,
    tools.add_data,
    tools.add_bench,
    audio_presets.add_convert,
    tools.add_serve,
)


def _package_version() -> str:
    import neuraleq_jax

    return neuraleq_jax.__version__


def build_parser() -> Parser:
    """The ``neuraleq`` parser with every subcommand; ``args.func(args, extra)`` runs one."""
    parser = Parser(
        prog="neuraleq",
        description="Words for sound → 5-band parametric EQ settings.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  neuraleq train --workdir runs/synthetic\n"
        "  neuraleq generate warm -n 3\n  neuraleq apply warm in.wav out.wav",
    )
    parser.add_argument("--version", action="version", version=f"neuraleq {_package_version()}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on failure, print the traceback as well as the one-line message",
    )
    commands = Commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    for add_subcommand in _SUBCOMMANDS:
        add_subcommand(commands)
    return parser


def _failure(error: BaseException) -> tuple[str, int]:
    """The one-line message and exit status for an exception (see the module docstring)."""
    checkpoints = sys.modules.get("neuraleq_jax.training.checkpoints")
    full = is_no_space(error)
    if full is not None:
        return no_space_message(full), FAILED
    if isinstance(error, CommandError):
        return str(error), error.code
    if checkpoints is not None and isinstance(error, checkpoints.CheckpointError):
        return str(error), FAILED
    if isinstance(
        error,
        (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError),
    ):
        return str(error), BAD_USAGE
    if isinstance(error, OSError):
        return str(error), FAILED
    text = str(error).strip().splitlines()
    return (
        f"unexpected error: {type(error).__name__}: {text[0] if text else ''} (rerun with "
        f"--debug for the traceback)"
    ), FAILED


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _parse(parser, argv: list[str], position: int):
    """``(args, extra)``: a pass-through command keeps the options it does not know in
    ``extra`` for the module it runs (unless it was asked for its own ``--help``)."""
    command = argv[position : position + 1]
    if (
        command
        and command[0] in tools.PASSTHROUGH
        and not {"-h", "--help"} & set(argv[position + 1 : position + 2])
    ):
        return parser.parse_known_args(argv)
    return parser.parse_args(argv), []


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush has nowhere to fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real file (captured, closed): nothing to flush
        pass


def _run(args, extra) -> tuple[int, str | None, BaseException | None]:
    """Run the parsed command: ``(exit status, failure message or None, error or None)``."""
    signals = StopSignals(install=args.command not in tools.OWN_SIGNALS)
    args.check_stop = signals.check  # the long loops call it
    try:
        with signals:
            code = int(args.func(args, extra) or 0)
            sys.stdout.flush()  # a reader that went away shows here, not at exit
            return code, None, None
    except BrokenPipeError:  # `neuraleq generate ... | head`: the reader has what it wanted
        _discard_stdout()
        return BROKEN_PIPE, None, None
    except KeyboardInterrupt:
        return INTERRUPTED, "interrupted", None
    except Terminated:
        return TERMINATED, "stopped by SIGTERM", None
    except Exception as caught:  # every failure ends as one line (see the module docstring)
        message, code = _failure(caught)
        return code, message, caught


def main(argv: list[str] | None = None) -> int:
    """Run ``neuraleq ARGV``; returns the exit status (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    position = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), len(argv))
    if argv[position : position + 1] == ["train"]:  # its own parser lists every config field
        from neuraleq_jax.cli import train

        debug = ["--debug"] if "--debug" in argv[:position] else []
        return train.main(argv[position + 1 :] + debug)
    args, extra = _parse(build_parser(), argv, position)
    args.load_system = _load_system  # looked up here, so that a test can replace the loader
    code, message, error = _run(args, extra)
    if message is None:
        return code
    if args.debug and error is not None:
        traceback.print_exception(error)
    print(f"neuraleq {args.command}: {_one_line(message)}", file=sys.stderr)
    return code


def exit_with_status(status: int) -> None:
    """Leave the process with ``status``; after an interruption, without tearing the
    interpreter down (XLA's worker threads may still be running, and the output is already
    cleaned up)."""
    if status in (INTERRUPTED, TERMINATED):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
