"""The ``neuraleq`` command: train, generate, morph, explore, apply, plot, evaluate, bench.

Every subcommand except ``train`` and ``bench`` uses the trained model in ``--workdir``
(default ``runs/synthetic``, or ``$NEURALEQ_WORKDIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

DEFAULT_WORKDIR = os.environ.get("NEURALEQ_WORKDIR", "runs/synthetic")
FORMATS = ("table", "json", "apo", "csv")


class CommandError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def _load_system(workdir: str):
    from neuraleq_jax.system import NeuralEQMorphingSystem

    path = Path(workdir)
    if not path.is_dir():
        raise CommandError(
            f"no trained model in {path}/ (the folder does not exist). Train one with:\n"
            f"  neuraleq train --workdir {path}")
    try:
        return NeuralEQMorphingSystem.load(path)
    except (FileNotFoundError, ValueError) as error:
        raise CommandError(f"cannot load a trained model from {path}/: {error}\n"
                           f"Train one with:  neuraleq train --workdir {path}") from None


def _table(settings_NxP, labels, layout) -> str:
    """A readable fixed-width table: one row per setting, gain/freq/Q per band."""
    head = f"{'setting':<24}" + "".join(f"{f'b{i + 1} dB':>8}{'Hz':>8}{'Q':>6}"
                                        for i in range(layout.n_bands))
    rows = [head]
    for label, row in zip(labels, np.asarray(settings_NxP, np.float64)):
        cells = "".join(f"{g:>8.2f}{f:>8.0f}{q:>6.2f}" for g, f, q in row.reshape(-1, 3))
        rows.append(f"{label[:23]:<24}{cells}")
    return "\n".join(rows)


def _emit(settings_NxP, layout, fmt: str, out: str | None, labels: list[str]) -> None:
    """Print settings in the chosen format, or write them to ``out`` atomically."""
    from neuraleq_jax import presets

    if fmt == "apo" and len(settings_NxP) > 1:
        texts = [presets.apo_text(row, name=label, layout=layout)
                 for row, label in zip(settings_NxP, labels)]
        if out:
            raise CommandError("an Equalizer APO file holds one setting; use -n 1 with --out, "
                               "or --format json/csv for several")
        print("\n".join(texts))
        return
    if out:
        if fmt == "table":
            raise CommandError("--out needs --format json, apo or csv")
        presets.write_preset(out, settings_NxP, format=fmt, names=labels, layout=layout)
        print(f"wrote {len(settings_NxP)} setting(s) to {out}")
        return
    if fmt == "table":
        print(_table(settings_NxP, labels, layout))
    elif fmt == "json":
        print(json.dumps(presets.preset_dict(settings_NxP, names=labels, layout=layout), indent=2))
    elif fmt == "apo":
        print(presets.apo_text(settings_NxP, name=labels[0], layout=layout), end="")
    else:
        print(presets.csv_text(settings_NxP, names=labels, layout=layout), end="")


def _centre_setting(system, term) -> np.ndarray:
    """The centre setting of a word or compound: the first step of a morph from it to itself."""
    return np.asarray(system.morph_between_terms(term, term, steps=2, as_array=True))[0]


def cmd_train(args, extra):
    from neuraleq_jax import train

    return train.main(extra)


def cmd_generate(args, _):
    system = _load_system(args.workdir)
    settings = system.generate_eq_from_semantic(
        args.term, variations=args.n, strength=args.strength, seed=args.seed, as_array=True)
    labels = [f"{args.term} #{i + 1}" for i in range(len(settings))]
    _emit(np.asarray(settings), system.layout, args.format, args.out, labels)


def cmd_morph(args, _):
    system = _load_system(args.workdir)
    settings = system.morph_between_terms(args.term_a, args.term_b, steps=args.steps,
                                          seed=args.seed, as_array=True)
    count = len(settings)
    labels = [f"{args.term_a}→{args.term_b} {i / (count - 1):.2f}" for i in range(count)]
    _emit(np.asarray(settings), system.layout, args.format, args.out, labels)


def cmd_explore(args, _):
    system = _load_system(args.workdir)
    if args.novel is None:
        settings = system.explore_latent_space(n_samples=args.n, seed=args.seed, as_array=True)
    else:  # N candidates, the K most novel of them (the facade counts the other way round)
        if args.novel > args.n:
            raise CommandError(f"--novel {args.novel} asks for more settings than the -n {args.n} "
                               "candidates explored; use --novel K with K <= N")
        settings = system.explore_latent_space(n_samples=args.novel, novel=args.n,
                                               seed=args.seed, as_array=True)
    settings = np.asarray(settings)
    if args.out:
        if args.out.endswith(".npz"):
            from neuraleq_jax.fileio import atomic_save_npz

            atomic_save_npz(args.out, settings=settings.astype(np.float32),
                            parameter_names=np.array(system.layout.param_names))
            print(f"wrote {len(settings)} setting(s) to {args.out}")
        else:
            labels = [f"explore #{i + 1}" for i in range(len(settings))]
            _emit(settings, system.layout, args.format if args.format != "table" else "csv",
                  args.out, labels)
    else:
        labels = [f"explore #{i + 1}" for i in range(len(settings))]
        _emit(settings, system.layout, args.format, None, labels)


def _setting_for(source: str, args):
    """A preset file's first setting and layout, or a word's / compound's centre setting."""
    from neuraleq_jax import presets

    path = Path(source)
    if path.suffix.lower() in (".json", ".csv", ".txt", ".apo", ".cfg"):
        if not path.is_file():
            raise CommandError(f"preset file {path} does not exist")
        settings, _names = presets.read_preset(path)
        return settings[0]
    return _centre_setting(_load_system(args.workdir), source)


def cmd_apply(args, _):
    from neuraleq_jax import audio

    setting = _setting_for(args.source, args)
    try:
        report = audio.apply_eq_to_file(
            args.input, args.output, setting, strength=args.strength,
            match_loudness=args.match_loudness, overwrite=args.overwrite, peak_mode=args.peaks)
    except FileExistsError as error:
        raise CommandError(f"{error} (on the command line: --overwrite)") from None
    print(report.to_json())


def cmd_plot(args, _):
    from neuraleq_jax import plots

    system = _load_system(args.workdir)
    settings = np.stack([_centre_setting(system, term) for term in args.terms])
    path = plots.plot_responses(settings, list(args.terms), args.out, layout=system.layout,
                                title=args.title)
    print(f"wrote {path}")


def cmd_evaluate(args, extra):
    from neuraleq_jax import evaluate

    return evaluate.main(["--workdir", args.workdir, "--seed", str(args.seed), *extra])


def cmd_bench(args, extra):
    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "__main__.py").is_file():
        raise CommandError("benchmarks live in the source checkout (benchmarks/); run "
                           "`neuraleq bench` from an editable install of the repository")
    return subprocess.call([sys.executable, "-m", "benchmarks", *extra], cwd=root)


def cmd_convert(args, _):
    from neuraleq_jax import presets

    found = presets.read_preset_file(args.input, format=args.source_format, fit=args.fit)
    for note in found.notes:
        print(f"note: {note}", file=sys.stderr)
    target = args.to or presets.SUFFIX_FORMATS.get(Path(args.output).suffix.lower())
    if target is None:
        raise CommandError(f"cannot tell the output format from {args.output!r}; pass --to "
                           f"one of {', '.join(presets.FORMATS)}")
    settings, names = found.settings, found.names
    if args.index is not None:
        if not 1 <= args.index <= len(settings):
            raise CommandError(f"--index {args.index}: {args.input} holds {len(settings)} "
                               f"setting(s); use 1..{len(settings)}")
        settings, names = settings[args.index - 1:args.index], names[args.index - 1:args.index]
    if target in presets.ONE_SETTING_FORMATS and len(settings) > 1:
        raise CommandError(f"{args.input} holds {len(settings)} settings and a {target} preset "
                           f"holds one: choose one with --index N")
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

    command = add("convert", "Convert an EQ preset between formats (ours, Equalizer APO/AutoEQ, "
                  "REW, EasyEffects, CSV).",
                  ["neuraleq convert ParametricEQ.txt warm.json",
                   "neuraleq convert warm.json warm-easyeffects.json --to easyeffects",
                   "neuraleq convert autoeq-10-filters.txt ours.json --fit"], cmd_convert,
                  model=False, output=False)
    command.add_argument("input", help="preset file (format detected from its content)")
    command.add_argument("output", help="file to write (format from --to or the suffix)")
    command.add_argument("--from", dest="source_format", choices=PRESET_FORMATS, default=None,
                         help="input format (default: detected)")
    command.add_argument("--to", choices=PRESET_FORMATS, default=None,
                         help="output format (default: from the suffix: .json ours, .txt APO, "
                              ".rew REW, .csv)")
    command.add_argument("--fit", action="store_true",
                         help="fit our 5 bands to a file whose filters are not one per band")
    command.add_argument("--index", type=_positive_int, default=None,
                         help="convert only the N-th setting (1-based) of a JSON/CSV file")
    command.add_argument("--overwrite", action="store_true", help="replace an existing output")
    command = add("serve", "Serve the web app (word map, morph, response, audio A/B, presets) "
                  "and its JSON API.",
                  ["neuraleq serve --workdir runs/synthetic",
                   "neuraleq serve --workdir runs/synthetic --port 8080"], cmd_serve,
                  output=False)
    command.add_argument("--host", default="127.0.0.1",
                         help="address to bind (default 127.0.0.1: this machine only)")
    command.add_argument("--port", type=int, default=8000, help="port (default 8000)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _strength(text: str) -> float:
    value = float(text)
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"strength must be a finite number >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuraleq", description="Words for sound → 5-band parametric EQ settings.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  neuraleq train --workdir runs/synthetic\n"
               "  neuraleq generate warm -n 3\n  neuraleq apply warm in.wav out.wav")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, help_text, examples, func, *, model=True, output=True):
        command = sub.add_parser(name, help=help_text, description=help_text,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="examples:\n" + "\n".join(f"  {e}" for e in examples))
        command.set_defaults(func=func)
        if model:
            command.add_argument("--workdir", default=DEFAULT_WORKDIR,
                                 help=f"folder of the trained model (default {DEFAULT_WORKDIR})")
            command.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
        if output:
            command.add_argument("--format", choices=FORMATS, default="table",
                                 help="output format (default table)")
            command.add_argument("--out", help="write to this file instead of printing")
        return command

    add("train", "Train a model (same as python -m neuraleq_jax.train; all its options apply).",
        ["neuraleq train --workdir runs/synthetic",
         "neuraleq train --config transformer --workdir runs/tf --train.epochs=100"],
        cmd_train, model=False, output=False)
    command = add("generate", "Generate EQ settings for a word or compound description.",
                  ["neuraleq generate warm -n 5", "neuraleq generate '0.7 warm + 0.3 bright'",
                   "neuraleq generate punchy --format apo --out punchy.txt"], cmd_generate)
    command.add_argument("term", help="a word, 'warm and punchy' or '0.7 warm + 0.3 bright'")
    command.add_argument("-n", type=_positive_int, default=5, help="variations (default 5)")
    command.add_argument("--strength", type=_strength, default=1.0,
                         help="0 = flat, 1 = as generated (default 1)")
    command = add("morph", "Settings along a smooth path from one word to another.",
                  ["neuraleq morph warm bright --steps 10"], cmd_morph)
    command.add_argument("term_a")
    command.add_argument("term_b")
    command.add_argument("--steps", type=int, default=10, help="steps, >= 2 (default 10)")
    command = add("explore", "Sample new settings from the latent space.",
                  ["neuraleq explore -n 20", "neuraleq explore -n 100000 --novel 10",
                   "neuraleq explore -n 1000000 --out explored.npz"], cmd_explore)
    command.add_argument("-n", type=_positive_int, default=20, help="samples (default 20)")
    command.add_argument("--novel", type=_positive_int, default=None,
                         help="return only the K most novel settings")
    command = add("apply", "Apply a word's setting (or a preset file) to an audio file.",
                  ["neuraleq apply warm in.wav out.wav",
                   "neuraleq apply bright in.flac out.flac --strength 0.5 --match-loudness lufs",
                   "neuraleq apply preset.json in.wav out.wav"], cmd_apply, output=False)
    command.add_argument("source", help="word, compound description or preset file (.json/.csv)")
    command.add_argument("input", help="input audio file (WAV, FLAC, ...)")
    command.add_argument("output", help="output audio file")
    command.add_argument("--strength", type=_strength, default=1.0)
    command.add_argument("--match-loudness", choices=("rms", "lufs"), default=None)
    command.add_argument("--peaks", choices=("report", "limit", "error"), default="report",
                         help="what to do when the output exceeds 0 dBFS (default report)")
    command.add_argument("--overwrite", action="store_true",
                         help="allow the output to replace an existing file or the input")
    command = add("plot", "Plot the response curves of words.",
                  ["neuraleq plot warm bright --out words.png"], cmd_plot, output=False)
    command.add_argument("terms", nargs="+")
    command.add_argument("--out", required=True, help="PNG file to write")
    command.add_argument("--title", default=None)
    command = add("evaluate", "Compute SPEC §6 figures for the model and the lite baseline.",
                  ["neuraleq evaluate --workdir runs/synthetic"], cmd_evaluate, output=False)
    add("bench", "Run the benchmark suite (options are passed to python -m benchmarks).",
        ["neuraleq bench --quick", "neuraleq bench generation"], cmd_bench, model=False,
        output=False)
    _add_preset_and_server_commands(add)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    passthrough = {"train", "evaluate", "bench"}
    if argv and argv[0] in passthrough and not {"-h", "--help"} & set(argv[1:2]):
        args, extra = parser.parse_known_args(argv)
    else:
        args, extra = parser.parse_args(argv), []
    try:
        return int(args.func(args, extra) or 0)
    except CommandError as error:
        print(f"neuraleq {args.command}: {error}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, FileExistsError, PermissionError) as error:
        print(f"neuraleq {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
