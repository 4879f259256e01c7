"""What every subcommand shares: exit codes, the one-line error, argument types, the model
loader, the output format rule and the way a subcommand is added to the parser."""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from neuraleq_jax import checks
from neuraleq_jax.presets.registry import FILE_SUFFIXES, SUFFIX_FORMATS
from neuraleq_jax.presets.registry import FORMATS as PRESET_FORMATS

DEFAULT_WORKDIR = os.environ.get("NEURALEQ_WORKDIR", "runs/synthetic")
# the table and presets.FORMATS (kept literal: importing presets loads jax; a test checks them)
FORMATS = ("table", *PRESET_FORMATS)  # a table on the screen, or any preset format
BAD_USAGE, FAILED, INTERRUPTED, TERMINATED = 2, 1, 130, 143
PRESET_SUFFIXES = tuple(SUFFIX_FORMATS)  # a path ending so is read as a preset file


class CommandError(Exception):
    """A user-facing error: printed in one line without a traceback; ``code`` is the exit
    status (2 bad usage or input, 1 a model or file that failed)."""

    def __init__(self, message: str, code: int = BAD_USAGE):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that point to ``--help`` (exit status 2)."""

    def error(self, message):
        chosen = re.match(r"argument \S+: invalid choice: '(.*)' \(choose from (.*)\)$", message)
        if chosen:  # a misspelt command or choice: name the nearest
            choices = re.findall(r"'([^']*)'", chosen[2])
            close = difflib.get_close_matches(chosen[1], choices, n=1)
            message += f"; did you mean {close[0]!r}?" if close else ""
        self.exit(BAD_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        return checks.count(int(text), "the value", 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0 to 65535 (0: a free one the system picks)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"must be a port number from 0 to 65535 (0: a free one), got {text!r}"
        )
    return port


def strength(text: str) -> float:
    """argparse type: a gain strength from 0 to ``checks.MAX_STRENGTH``, as the web API takes
    (see :func:`neuraleq_jax.checks.strength`)."""
    try:
        value = checks.strength(float(text))
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= checks.MAX_STRENGTH:
        raise argparse.ArgumentTypeError(
            f"strength must be a finite number >= 0 and <= {checks.MAX_STRENGTH:g} (0 flat, "
            f"1 as generated, > 1 exaggerates), got {text!r}"
        )
    return value


def seed_number(text: str) -> int:
    """argparse type: a PRNG seed, an integer in ``[0, 2**32)``."""
    try:
        return checks.seed(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an integer from 0 to {checks.SEED_LIMIT - 1}, got {text!r}"
        ) from None


def at_least_two(text: str) -> int:
    """argparse type: an integer >= 2 (the steps of a morph, both ends included)."""
    try:
        return checks.count(int(text), "the value", 2)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2, got {text!r}") from None


def load_system(workdir: str):
    """The trained model in ``workdir`` as the facade; a missing one is a ``CommandError``
    (exit 1) that says how to train one."""
    from neuraleq_jax.system import NeuralEQMorphingSystem

    path = Path(workdir)
    train = f"train one with: neuraleq train --workdir {path}"
    if path.is_file():
        raise CommandError(
            f"--workdir {path} is a file, not a folder: give the folder a "
            f"training run wrote (neuraleq train --workdir FOLDER)",
            FAILED,
        )
    if not path.is_dir():
        raise CommandError(
            f"no trained model in {path}/ (the folder does not exist); {train}", FAILED
        )
    try:
        return NeuralEQMorphingSystem.load(path)
    except FileNotFoundError as error:
        raise CommandError(f"cannot load a trained model from {path}/: {error}", FAILED) from None


def resolve_format(args, also: tuple[str, ...] = ()) -> str:
    """``--format``, else the one ``--out``'s suffix names (like ``presets.write_preset``),
    else ``table``. An explicit ``--format`` wins over the suffix (a note says so). ``also``:
    the command's other outputs, named in the refusal of an unknown suffix."""
    out = getattr(args, "out", None)
    suffix = Path(out).suffix.lower() if out else None
    implied = SUFFIX_FORMATS.get(suffix)
    if args.format is not None:
        # a file's own suffix (.txt for REW, .json for EasyEffects) needs no note
        if implied not in (None, args.format) and suffix != FILE_SUFFIXES.get(args.format):
            print(
                f"note: writing {args.format} to {out} as --format asks (its suffix "
                f"suggests {implied})",
                file=sys.stderr,
            )
        return args.format
    if out is None:
        return "table"
    if implied is None:
        raise CommandError(
            f"cannot tell the format of --out {out} from its suffix; use a "
            f"suffix in {', '.join(sorted(SUFFIX_FORMATS))}{''.join(', ' + a for a in also)} "
            f"or --format one of {', '.join(FORMATS[1:])}"
        )
    return implied


def centre_setting(system, term) -> np.ndarray:
    """The centre setting ``[P]`` of a word or compound: the first step of a morph from it
    to itself."""
    return np.asarray(system.morph_between_terms(term, term, steps=2, as_array=True))[0]


def word_setting(system, term, args) -> np.ndarray:
    """The setting ``[P]`` a word or compound means to every command, at strength 1: its
    centre with ``--centre``, else the variation ``--seed`` draws (the first row of
    ``neuraleq generate TERM --seed S``)."""
    if args.centre:
        return centre_setting(system, term)
    return np.asarray(
        system.generate_eq_from_semantic(term, 1, strength=1.0, seed=args.seed, as_array=True)
    )[0]


def add_setting_options(command, *, what: str) -> None:
    """``--strength``, and ``--seed`` or ``--centre``: how a command that turns words into
    settings (generate, apply, plot) chooses them, the same in each. ``what``: what the
    strength scales, for the help."""
    add_strength_option(command, what=what)
    choice = command.add_mutually_exclusive_group()
    choice.add_argument(
        "--seed",
        type=seed_number,
        default=0,
        help="which variation of the word to use: the default is a variation, and the same "
        "seed gives the same one in generate, apply and plot (default 0)",
    )
    choice.add_argument(
        "--centre",
        action="store_true",
        help="use the word's centre setting instead of a variation drawn by --seed",
    )


def add_strength_option(command, *, what: str) -> None:
    """``--strength``, with the range and the clipping note every command shares."""
    command.add_argument(
        "--strength",
        type=strength,
        default=1.0,
        help=f"scales {what}'s gains toward flat, 0 to {checks.MAX_STRENGTH:g}: 0 flat, 1 as "
        "generated, > 1 exaggerates; a gain pushed past ±12 dB is clipped, with a note "
        "(default 1)",
    )


def strength_notes(settings, strength_value: float, layout) -> list[str]:
    """The clipping note (a list of at most one) for ``settings`` ``[..., P]`` already scaled
    by ``strength_value``: the one ``apply`` and the web API give too."""
    from neuraleq_jax.model.paramspace import strength_clipped_bands, strength_clipping_note

    bands = strength_clipped_bands(settings, strength_value, layout)
    return [strength_clipping_note(bands, strength_value, layout)] if bands else []


def clipping_watch(chunks, strength_value: float, layout, notes: list[str]):
    """The chunks of settings ``[C, P]``, already scaled by ``strength_value``, passed on as
    they come; once the last has passed, the clipping note for all of them (if any) is
    appended to ``notes``."""
    from neuraleq_jax.model.paramspace import strength_clipped_bands, strength_clipping_note

    bands: set[int] = set()
    for chunk in chunks:
        bands.update(strength_clipped_bands(chunk, strength_value, layout))
        yield chunk
    if bands:
        notes.append(strength_clipping_note(tuple(sorted(bands)), strength_value, layout))


def print_notes(notes: Sequence[str]) -> None:
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


class Commands:
    """Adds subcommands to the ``neuraleq`` parser, each with its examples, ``--debug`` and,
    where asked, the model options (``--workdir``, and ``--seed`` with ``seed``) and output
    options (``--format``, ``--out``)."""

    def __init__(self, subparsers):
        self.subparsers = subparsers

    def add(
        self,
        name: str,
        help_text: str,
        examples: Sequence[str],
        func: Callable,
        *,
        model: bool = True,
        output: bool = True,
        seed: bool = True,
    ) -> argparse.ArgumentParser:
        command = self.subparsers.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        )
        command.set_defaults(func=func)
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        if model:
            _add_model_options(command, seed=seed)
        if output:
            _add_output_options(command)
        return command


def _add_model_options(command, *, seed: bool) -> None:
    command.add_argument(
        "--workdir",
        default=DEFAULT_WORKDIR,
        help=f"folder of the trained model (default {DEFAULT_WORKDIR})",
    )
    if seed:  # a command whose result a seed changes; words take theirs by add_setting_options
        command.add_argument("--seed", type=seed_number, default=0, help="PRNG seed (default 0)")


def _add_output_options(command) -> None:
    command.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help=f"output format (default: the one --out's suffix names, "
        f"{' '.join(PRESET_SUFFIXES)}; else table); given, it wins",
    )
    command.add_argument(
        "--out",
        help="write to this file instead of printing (streamed, with progress, when large)",
    )
