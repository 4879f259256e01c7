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
  removed, an earlier one at the same path is left as it was.

``neuraleq --debug COMMAND ...`` prints the traceback as well. ``train``, ``evaluate`` and
``bench`` pass their arguments on and return the exit status of the module they run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path

import numpy as np

from neuraleq_jax import checks
from neuraleq_jax import cli_output as output

DEFAULT_WORKDIR = os.environ.get("NEURALEQ_WORKDIR", "runs/synthetic")
FORMATS = ("table", "json", "apo", "csv")
BAD_USAGE, FAILED, INTERRUPTED, TERMINATED = 2, 1, 130, 143
PRESET_SUFFIXES = (".json", ".csv", ".txt", ".apo", ".cfg")


class CommandError(Exception):
    """A user-facing error: printed in one line without a traceback; ``code`` is the exit
    status (2 bad usage or input, 1 a model or file that failed)."""

    def __init__(self, message: str, code: int = BAD_USAGE):
        super().__init__(message)
        self.code = code


class _Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that files being written are cleaned up."""


def _raise_terminated(signum, frame):
    raise _Terminated()


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors that point to ``--help`` (exit status 2)."""

    def error(self, message):
        self.exit(BAD_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _load_system(workdir: str):
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


def _resolve_format(args) -> str:
    """``--format``, else the one ``--out``'s suffix names (like ``presets.write_preset``),
    else ``table``. An explicit ``--format`` wins over the suffix (a note says so)."""
    from neuraleq_jax.presets import SUFFIX_FORMATS

    out = getattr(args, "out", None)
    implied = SUFFIX_FORMATS.get(Path(out).suffix.lower()) if out else None
    if args.format is not None:
        if implied is not None and implied != args.format:
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
            f"suffix in {', '.join(sorted(SUFFIX_FORMATS))} or --format json, "
            f"apo or csv"
        )
    return implied


def _centre_setting(system, term) -> np.ndarray:
    """The centre setting of a word or compound: the first step of a morph from it to itself."""
    return np.asarray(system.morph_between_terms(term, term, steps=2, as_array=True))[0]


def cmd_train(args, extra):
    from neuraleq_jax import train

    return train.main(extra)


def cmd_generate(args, _):
    fmt = _resolve_format(args)
    count = args.n if args.n is not None else (1 if fmt == "apo" else 5)
    system = _load_system(args.workdir)
    chunks = system.generate_eq_chunks(
        args.term, count, strength=args.strength, seed=args.seed, chunk=output.STREAM_CHUNK
    )
    output.emit(chunks, count, system.layout, fmt, args.out, lambda i: f"{args.term} #{i + 1}")


def cmd_morph(args, _):
    fmt = _resolve_format(args)
    system = _load_system(args.workdir)
    settings = np.asarray(
        system.morph_between_terms(
            args.term_a, args.term_b, steps=args.steps, seed=args.seed, as_array=True
        )
    )
    count = len(settings)
    output.emit(
        [settings],
        count,
        system.layout,
        fmt,
        args.out,
        lambda i: f"{args.term_a}→{args.term_b} {i / (count - 1):.2f}",
    )


def cmd_explore(args, _):
    from neuraleq_jax import explore_command

    if explore_command.is_store_path(args.out):
        return explore_command.run(args)
    npz = bool(args.out) and args.out.lower().endswith(".npz")
    fmt = "npz" if npz and args.format is None else _resolve_format(args)
    if args.novel is not None and args.novel > args.n:
        raise CommandError(
            f"--novel {args.novel} asks for more settings than the -n {args.n} "
            "candidates explored; use --novel K with K <= N"
        )
    system = _load_system(args.workdir)
    if args.novel is not None:
        # N candidates, the K most novel of them (the facade counts the other way round)
        chunks = [
            np.asarray(
                system.explore_latent_space(
                    n_samples=args.novel, novel=args.n, seed=args.seed, as_array=True
                )
            )
        ]
    elif fmt == "npz":  # one array in the file: 60 bytes per setting in memory
        chunks = [
            np.asarray(system.explore_latent_space(n_samples=args.n, seed=args.seed, as_array=True))
        ]
    else:
        chunks = system.explore_chunks(args.n, seed=args.seed, chunk=output.STREAM_CHUNK)
    if fmt == "npz":
        from neuraleq_jax.fileio import atomic_save_npz

        settings = np.concatenate(list(chunks))
        atomic_save_npz(
            args.out,
            settings=settings.astype(np.float32),
            parameter_names=np.array(system.layout.param_names),
        )
        print(f"wrote {len(settings)} setting(s) to {args.out}")
        return
    count = args.n if args.novel is None else args.novel
    output.emit(chunks, count, system.layout, fmt, args.out, lambda i: f"explore #{i + 1}")


def _setting_for(source: str, args) -> tuple[np.ndarray, str]:
    """``(setting [P], what it is)``: one setting of a preset file (``--index``, counted from
    1, when the file holds several), or a word's / compound's centre setting."""
    from neuraleq_jax import presets

    path = Path(source)
    if path.suffix.lower() not in PRESET_SUFFIXES:
        if args.index is not None:
            raise CommandError(
                f"--index picks one setting of a preset file; {source!r} is a "
                f"word or description (preset files end in "
                f"{', '.join(PRESET_SUFFIXES)})"
            )
        return _centre_setting(_load_system(args.workdir), source), f"the centre of {source!r}"
    if not path.is_file():
        raise CommandError(f"preset file {path} does not exist")
    try:
        settings, names = presets.read_preset(path)
    except ValueError as error:
        raise CommandError(f"cannot read preset file {path}: {error}") from None
    count = len(settings)
    if args.index is None and count > 1:
        raise CommandError(
            f"{path} holds {count} settings; choose one with --index I (1 to {count})"
        )
    index = 1 if args.index is None else args.index
    if index > count:
        raise CommandError(f"--index {index} is past the end: {path} holds {count} setting(s)")
    return settings[index - 1], f"{names[index - 1]!r} from {path}"


def _rms_dbfs(path) -> float | None:
    """RMS level of an audio file over all channels (dBFS), read in blocks; None if silent."""
    import soundfile as sf

    total, samples = 0.0, 0
    for block in sf.blocks(str(path), blocksize=1 << 16, dtype="float64", always_2d=True):
        total += float(np.sum(block * block))
        samples += block.size
    return 10 * np.log10(total / samples) if samples and total > 0 else None


def _dbfs(value) -> str:
    return "silence" if value is None else f"{value:+.2f} dBFS"


def apply_summary(report, source: str, layout) -> str:
    """A few lines for people: the setting per band, loudness and peaks, what was written."""
    lines = [f"applied {source} at strength {report.strength:g} to {report.in_path}"]
    for band, (kind, (gain, freq, q)) in enumerate(
        zip(layout.kinds, np.reshape(report.setting, (-1, 3))), start=1
    ):
        lines.append(
            f"  band {band} {kind.replace('_', ' '):<10} {gain:+6.2f} dB {freq:>8.0f} Hz  Q {q:.2f}"
        )
    if report.match_loudness is not None:
        unit = "LUFS" if report.match_loudness == "lufs" else "dBFS RMS"
        level = "n/a" if report.loudness_in is None else f"{report.loudness_in:.2f} {unit}"
        lines.append(
            f"loudness: matched by {report.match_loudness} ({level}; gain "
            f"{report.loudness_gain_db:+.2f} dB)"
        )
    else:
        rms_in, rms_out = _rms_dbfs(report.in_path), _rms_dbfs(report.out_path)
        change = "n/a" if None in (rms_in, rms_out) else f"{rms_out - rms_in:+.2f} dB"
        lines.append(
            f"loudness: RMS level changed by {change} (--match-loudness rms or lufs keeps it)"
        )
    lines.append(f"peak: {_dbfs(report.peak_in_dbfs)} in, {_dbfs(report.peak_out_dbfs)} out")
    lines += [f"note: {note}" for note in report.notes]
    if report.clipped_samples:
        from neuraleq_jax.audio import FLOAT_SUBTYPES

        if report.subtype in FLOAT_SUBTYPES:
            lines.append(
                f"peaks above full scale: {report.clipped_samples} sample value(s) "
                f"beyond ±1.0, kept by the {report.subtype} file (players may clip "
                f"them); --peaks limit scales the output below 0 dBFS"
            )
        else:  # the report's notes already say how many the format clipped
            lines.append(
                "hint: --peaks limit, a lower --strength or --match-loudness avoids the clipping"
            )
    lines.append(
        f"wrote {report.out_path} ({report.format} {report.subtype}, "
        f"{report.channels} channel(s), {report.sample_rate:g} Hz, "
        f"{report.frames / report.sample_rate:.2f} s)"
    )
    return "\n".join(lines)


def cmd_apply(args, _):
    import warnings

    from neuraleq_jax import audio

    setting, source = _setting_for(args.source, args)
    try:
        with warnings.catch_warnings():  # the summary states peaks and clipping itself
            warnings.simplefilter("ignore", audio.ClippingWarning)
            report = audio.apply_eq_to_file(
                args.input,
                args.output,
                setting,
                strength=args.strength,
                match_loudness=args.match_loudness,
                overwrite=args.overwrite,
                peak_mode=args.peaks,
            )
    except FileExistsError as error:
        message = str(error).replace("pass overwrite=True", "pass --overwrite")
        raise CommandError(message) from None
    except audio.ClippingError as error:
        raise CommandError(
            f"output peak {_dbfs(error.report.peak_out_dbfs)}: {error.report.clipped_samples} "
            f"sample value(s) above full scale, so --peaks error wrote nothing; use --peaks "
            f"limit, a lower --strength or --match-loudness",
            FAILED,
        ) from None
    from neuraleq_jax.paramspace import DEFAULT_LAYOUT

    print(report.to_json() if args.json else apply_summary(report, source, DEFAULT_LAYOUT))


def cmd_plot(args, _):
    from neuraleq_jax import plots

    system = _load_system(args.workdir)
    if args.map:
        return cmd_plot_map(args, system)
    if not args.terms:
        raise CommandError(
            "name the words to plot (neuraleq plot warm bright --out f.png), "
            "or draw the word map with --map"
        )
    settings = np.stack([_centre_setting(system, term) for term in args.terms])
    path = plots.plot_responses(
        settings, list(args.terms), args.out, layout=system.layout, title=args.title
    )
    print(f"wrote {path}")


def cmd_plot_map(args, system) -> None:
    from neuraleq_jax import plots

    words = system.vocabulary
    confidence = [system.word_info(word)["confidence"] for word in words]
    path = plots.plot_word_map(
        system.word_map(), words, args.out, confidence=confidence, title=args.title
    )
    print(f"wrote {path}")


def _confidence_text(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def cmd_words(args, _):
    from neuraleq_jax import vocabulary

    system = _load_system(args.workdir)
    prefix = (args.prefix or "").strip().lower()
    words = [w for w in system.vocabulary if w.lower().startswith(prefix)]
    if not words:
        raise CommandError(
            f"no word starts with {args.prefix!r} "
            f"({vocabulary.unknown_word_message(args.prefix, system.vocabulary)})"
        )
    infos = [system.word_info(word) for word in words]
    if args.format == "json":
        print(json.dumps(infos, indent=2, ensure_ascii=False))
        return
    width = max(len(w) for w in words) + 2
    print(f"{'word':<{width}}{'confidence':>11}{'contributors':>14}  sources")
    for info in infos:
        sources = ", ".join(s["name"] for s in info["sources"])
        people = "—" if info["contributors"] is None else str(info["contributors"])
        print(
            f"{info['word']:<{width}}{_confidence_text(info['confidence']):>11}"
            f"{people:>14}  {sources}"
        )
    print(f"{len(words)} of {len(system.vocabulary)} words")


def cmd_describe(args, _):
    from neuraleq_jax import presets

    system = _load_system(args.workdir)
    path = Path(args.file)
    if not path.is_file():
        raise CommandError(f"preset file {path} does not exist")
    settings, names = presets.read_preset(path, layout=system.layout)
    described = system.describe(np.asarray(settings), k=args.k)
    if args.format == "json":
        print(
            json.dumps(
                [
                    {"setting": name, "words": [{"word": w, "distance_db": d} for w, d in words]}
                    for name, words in zip(names, described)
                ],
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    for index, (name, words) in enumerate(zip(names, described)):
        label = name or f"setting {index + 1}"
        print(f"{label}: " + ", ".join(f"{w} ({d:.2f} dB)" for w, d in words))


def cmd_data_fetch(args, _):
    from neuraleq_jax import fetch

    try:
        result = fetch.fetch(
            args.name, args.dest, source=args.source, expected_sha256=args.sha256, force=args.force
        )
    except RuntimeError as error:  # the download itself failed
        raise CommandError(str(error)) from None
    check = "verified" if result.verified else "not checked (--from without --sha256)"
    print(
        f"wrote {result.path} ({result.size} bytes) from {result.source}\n"
        f"sha256 {result.sha256} ({check})\n"
        f"licence: {fetch.SOURCES[args.name].licence}; the file stays out of the package"
    )


def cmd_evaluate(args, extra):
    from neuraleq_jax import evaluate

    return evaluate.main(["--workdir", args.workdir, "--seed", str(args.seed), *extra])


def cmd_bench(args, extra):
    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "__main__.py").is_file():
        raise CommandError(
            "benchmarks live in the source checkout (benchmarks/); run "
            "`neuraleq bench` from an editable install of the repository"
        )
    return subprocess.call([sys.executable, "-m", "benchmarks", *extra], cwd=root)


def cmd_convert(args, _):
    from neuraleq_jax import presets

    found = presets.read_preset_file(args.input, format=args.source_format, fit=args.fit)
    for note in found.notes:
        print(f"note: {note}", file=sys.stderr)
    target = args.to or presets.SUFFIX_FORMATS.get(Path(args.output).suffix.lower())
    if target is None:
        raise CommandError(
            f"cannot tell the output format from {args.output!r}; pass --to "
            f"one of {', '.join(presets.FORMATS)}"
        )
    settings, names = found.settings, found.names
    if args.index is not None:
        if not 1 <= args.index <= len(settings):
            raise CommandError(
                f"--index {args.index}: {args.input} holds {len(settings)} "
                f"setting(s); use 1..{len(settings)}"
            )
        settings, names = settings[args.index - 1 : args.index], names[args.index - 1 : args.index]
    if target in presets.ONE_SETTING_FORMATS and len(settings) > 1:
        raise CommandError(
            f"{args.input} holds {len(settings)} settings and a {target} preset "
            f"holds one: choose one with --index N"
        )
    if Path(args.output).exists() and not args.overwrite:
        raise CommandError(f"{args.output} exists; pass --overwrite to replace it")
    presets.write_preset(args.output, settings, format=target, names=names)
    print(f"wrote {len(settings)} setting(s) as {target} to {args.output}")


def cmd_serve(args, _):
    from neuraleq_jax import server
    from neuraleq_jax.system import use_synchronous_cpu_dispatch

    use_synchronous_cpu_dispatch()  # one request at a time: run each computation inline
    return server.serve(_load_system(args.workdir), host=args.host, port=args.port)


def _add_preset_and_server_commands(add) -> None:
    """Parser entries of ``convert`` and ``serve``."""
    from neuraleq_jax.presets import FORMATS as PRESET_FORMATS

    command = add(
        "convert",
        "Convert an EQ preset between formats (ours, Equalizer APO/AutoEQ, REW, EasyEffects, CSV).",
        [
            "neuraleq convert ParametricEQ.txt warm.json",
            "neuraleq convert warm.json warm-easyeffects.json --to easyeffects",
            "neuraleq convert autoeq-10-filters.txt ours.json --fit",
        ],
        cmd_convert,
        model=False,
        output=False,
    )
    command.add_argument("input", help="preset file (format detected from its content)")
    command.add_argument("output", help="file to write (format from --to or the suffix)")
    command.add_argument(
        "--from",
        dest="source_format",
        choices=PRESET_FORMATS,
        default=None,
        help="input format (default: detected)",
    )
    command.add_argument(
        "--to",
        choices=PRESET_FORMATS,
        default=None,
        help="output format (default: from the suffix: .json ours, .txt APO, .rew REW, .csv)",
    )
    command.add_argument(
        "--fit",
        action="store_true",
        help="fit our 5 bands to a file whose filters are not one per band",
    )
    command.add_argument(
        "--index",
        type=_positive_int,
        default=None,
        help="convert only the N-th setting (1-based) of a JSON/CSV file",
    )
    command.add_argument("--overwrite", action="store_true", help="replace an existing output")
    command = add(
        "serve",
        "Serve the web app (word map, morph, response, audio A/B, presets) and its JSON API.",
        [
            "neuraleq serve --workdir runs/synthetic",
            "neuraleq serve --workdir runs/synthetic --port 8080",
        ],
        cmd_serve,
        output=False,
    )
    command.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    command.add_argument("--port", type=int, default=8000, help="port (default 8000)")


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        return checks.count(int(text), "it", 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None


def _strength(text: str) -> float:
    """argparse type: a gain strength (see :func:`checks.strength`)."""
    try:
        return checks.strength(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"strength must be a finite number >= 0 (0 flat, 1 as generated, > 1 "
            f"exaggerates), got {text!r}"
        ) from None


def _add_vocabulary_commands(add, sub) -> None:
    """The ``words``, ``describe`` and ``data fetch`` subcommands."""
    command = add(
        "words",
        "List the model's words (with a PREFIX: those starting with it), "
        "with their confidence, contributors and sources.",
        ["neuraleq words", "neuraleq words mu", "neuraleq words --format json"],
        cmd_words,
        output=False,
    )
    command.add_argument("prefix", nargs="?", default="")
    command.add_argument("--format", choices=("table", "json"), default="table")
    command = add(
        "describe",
        "Name the words nearest the settings of a preset file (JSON, CSV or Equalizer APO).",
        ["neuraleq describe preset.json", "neuraleq describe eq.txt -k 3"],
        cmd_describe,
        output=False,
    )
    command.add_argument("file", help="preset file (.json, .csv, .txt/.apo)")
    command.add_argument("-k", type=_positive_int, default=5, help="words per setting (5)")
    command.add_argument("--format", choices=("table", "json"), default="table")
    data = sub.add_parser(
        "data",
        help="Get crowd data sets (neuraleq data fetch audealize).",
        description="Get crowd data sets.",
    )
    actions = data.add_subparsers(dest="action", required=True, metavar="ACTION")
    command = actions.add_parser(
        "fetch",
        help="download a data set and check its sha256",
        description="Download a data set over HTTPS and check its sha256; nothing is written "
        "when the digest or the format is wrong.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  neuraleq data fetch audealize --dest data/\n"
        "  neuraleq data fetch audealize --from ./eqdescriptors.json --dest data/",
    )
    command.set_defaults(func=cmd_data_fetch)
    command.add_argument("name", choices=("audealize",))
    command.add_argument("--dest", default=".", help="folder to write into (default .)")
    command.add_argument(
        "--from",
        dest="source",
        default=None,
        help="another path or URL; its sha256 is reported, not enforced",
    )
    command.add_argument("--sha256", default=None, help="enforce this digest (with --from)")
    command.add_argument("--force", action="store_true", help="replace an existing, different file")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="neuraleq",
        description="Words for sound → 5-band parametric EQ settings.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  neuraleq train --workdir runs/synthetic\n"
        "  neuraleq generate warm -n 3\n  neuraleq apply warm in.wav out.wav",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on failure, print the traceback as well as the one-line message",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, help_text, examples, func, *, model=True, output=True):
        command = sub.add_parser(
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
            command.add_argument(
                "--workdir",
                default=DEFAULT_WORKDIR,
                help=f"folder of the trained model (default {DEFAULT_WORKDIR})",
            )
            command.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
        if output:
            command.add_argument(
                "--format",
                choices=FORMATS,
                default=None,
                help="output format (default: the one --out's suffix names, "
                ".json .csv .txt/.apo/.cfg; else table); given, it wins",
            )
            command.add_argument(
                "--out",
                help="write to this file instead of printing (streamed, with progress, when large)",
            )
        return command

    add(
        "train",
        "Train a model (same as python -m neuraleq_jax.train; all its options apply).",
        [
            "neuraleq train --workdir runs/synthetic",
            "neuraleq train --config transformer --workdir runs/tf --train.epochs=100",
        ],
        cmd_train,
        model=False,
        output=False,
    )
    command = add(
        "generate",
        "Generate EQ settings for a word or compound description.",
        [
            "neuraleq generate warm -n 5",
            "neuraleq generate '0.7 warm + 0.3 bright'",
            "neuraleq generate punchy --format apo --out punchy.txt",
        ],
        cmd_generate,
    )
    command.add_argument("term", help="a word, 'warm and punchy' or '0.7 warm + 0.3 bright'")
    command.add_argument(
        "-n",
        type=_positive_int,
        default=None,
        help="variations (default 5; 1 for --format apo, which holds one)",
    )
    command.add_argument(
        "--strength", type=_strength, default=1.0, help="0 = flat, 1 = as generated (default 1)"
    )
    command = add(
        "morph",
        "Settings along a smooth path from one word to another.",
        ["neuraleq morph warm bright --steps 10"],
        cmd_morph,
    )
    command.add_argument("term_a")
    command.add_argument("term_b")
    command.add_argument("--steps", type=int, default=10, help="steps, >= 2 (default 10)")
    command = add(
        "explore",
        "Sample new settings from the latent space.",
        [
            "neuraleq explore -n 20",
            "neuraleq explore -n 100000 --novel 10",
            "neuraleq explore -n 1000000 --out explored.npz",
            "neuraleq explore -n 100000000 --out explored.zarr --novel 100",
        ],
        cmd_explore,
    )
    command.add_argument("-n", type=_positive_int, default=20, help="samples (default 20)")
    command.add_argument(
        "--novel", type=_positive_int, default=None, help="return only the K most novel settings"
    )
    from neuraleq_jax import explore_command

    explore_command.add_arguments(command)
    command = add(
        "apply",
        "Apply a word's setting (or a preset file) to an audio file.",
        [
            "neuraleq apply warm in.wav out.wav",
            "neuraleq apply bright in.flac out.flac --strength 0.5 --match-loudness lufs",
            "neuraleq apply preset.json in.wav out.wav",
        ],
        cmd_apply,
        output=False,
    )
    command.add_argument(
        "source", help="word, compound description or preset file (.json/.csv/.txt)"
    )
    command.add_argument("input", help="input audio file (WAV, FLAC, ...)")
    command.add_argument("output", help="output audio file")
    command.add_argument("--strength", type=_strength, default=1.0)
    command.add_argument("--match-loudness", choices=("rms", "lufs"), default=None)
    command.add_argument(
        "--peaks",
        choices=("report", "limit", "error"),
        default="report",
        help="what to do when the output exceeds 0 dBFS (default report)",
    )
    command.add_argument(
        "--overwrite",
        action="store_true",
        help="allow the output to replace an existing file or the input",
    )
    command.add_argument(
        "--index",
        type=_positive_int,
        default=None,
        help="which setting of a preset file holding several (1 = first)",
    )
    command.add_argument(
        "--json", action="store_true", help="print the full report as JSON instead of the summary"
    )
    command = add(
        "plot",
        "Plot the response curves of words, or the word map (--map).",
        ["neuraleq plot warm bright --out words.png", "neuraleq plot --map --out map.png"],
        cmd_plot,
        output=False,
    )
    command.add_argument("terms", nargs="*")
    command.add_argument(
        "--map",
        action="store_true",
        help="draw the vocabulary's 2-D word map (sized by confidence)",
    )
    command.add_argument("--out", required=True, help="PNG file to write")
    command.add_argument("--title", default=None)
    command = add(
        "evaluate",
        "Compute SPEC §6 figures for the model and the lite baseline.",
        ["neuraleq evaluate --workdir runs/synthetic"],
        cmd_evaluate,
        output=False,
    )
    _add_vocabulary_commands(add, sub)
    add(
        "bench",
        "Run the benchmark suite (options are passed to python -m benchmarks).",
        ["neuraleq bench --quick", "neuraleq bench generation"],
        cmd_bench,
        model=False,
        output=False,
    )
    _add_preset_and_server_commands(add)
    return parser


def _failure(error: BaseException) -> tuple[str, int]:
    """The one-line message and exit status for an exception (see the module docstring)."""
    checkpoints = sys.modules.get("neuraleq_jax.checkpoints")
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    passthrough = {"train", "evaluate", "bench"}
    position = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), len(argv))
    if argv[position : position + 1] == ["train"]:  # its own parser lists every config field
        from neuraleq_jax import train

        debug = ["--debug"] if "--debug" in argv[:position] else []
        return train.main(argv[position + 1 :] + debug)
    if (
        argv[position : position + 1]
        and argv[position] in passthrough
        and not {"-h", "--help"} & set(argv[position + 1 : position + 2])
    ):
        args, extra = parser.parse_known_args(argv)
    else:
        args, extra = parser.parse_args(argv), []
    own_signals = (
        args.command not in passthrough  # train handles its signals itself
        and threading.current_thread() is threading.main_thread()
    )
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if own_signals else None
    error = None
    try:
        return int(args.func(args, extra) or 0)
    except KeyboardInterrupt:
        message, code = "interrupted", INTERRUPTED
    except _Terminated:
        message, code = "stopped by SIGTERM", TERMINATED
    except Exception as caught:  # every failure ends as one line (see the module docstring)
        message, code = _failure(caught)
        error = caught
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if args.debug and error is not None:
        traceback.print_exception(error)
    print(f"neuraleq {args.command}: {_one_line(message)}", file=sys.stderr)
    return code


if __name__ == "__main__":
    status = main()
    if status in (INTERRUPTED, TERMINATED):
        # stopped mid-computation: XLA's worker threads may still be running, and tearing the
        # interpreter down under them can crash; the output is already cleaned up, so leave now
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
