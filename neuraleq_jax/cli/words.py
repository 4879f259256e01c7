"""``neuraleq words``, ``describe`` and ``plot``: the model's vocabulary, the words nearest a
preset, and pictures of words' responses or of the word map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from neuraleq_jax.cli.common import (
    CommandError,
    Commands,
    add_setting_options,
    positive_int,
    print_notes,
    strength_notes,
    word_setting,
)
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT


def cmd_plot(args, _):
    from neuraleq_jax import plots
    from neuraleq_jax.plots.figures import check_out_path

    check_out_path(args.out)  # a wrong name or folder fails before the model loads
    if not args.map and not args.terms:
        raise CommandError(
            "name the words to plot (neuraleq plot warm bright --out f.png), "
            "or draw the word map with --map"
        )
    system = args.load_system(args.workdir)
    if args.map:
        return cmd_plot_map(args, system)
    from neuraleq_jax.generation.common import apply_strength

    settings = np.stack([word_setting(system, term, args) for term in args.terms])
    settings = np.asarray(apply_strength(settings, args.strength, system.layout))
    path = plots.plot_responses(
        settings, list(args.terms), args.out, layout=system.layout, title=args.title
    )
    print_notes(strength_notes(settings, args.strength, system.layout))
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


def _sources_text(sources) -> str:
    """Each source with its count: contributors where known, else settings."""
    return ", ".join(
        f"{s['name']} {s['contributors']}"
        if s["contributors"] is not None
        else f"{s['name']} ({s['settings']} settings)"
        for s in sources
    )


def cmd_words(args, _):
    from neuraleq_jax.data import vocabulary

    system = args.load_system(args.workdir)
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
    langs = [info["lang"] or "—" for info in infos]
    lang_width = max(len(lang) for lang in [*langs, "language"]) + 2
    print(
        f"{'word':<{width}}{'confidence':>11}{'contributors':>14}  {'language':<{lang_width}}sources"
    )
    for info, lang in zip(infos, langs):
        people = "—" if info["contributors"] is None else str(info["contributors"])
        print(
            f"{info['word']:<{width}}{_confidence_text(info['confidence']):>11}"
            f"{people:>14}  {lang:<{lang_width}}{_sources_text(info['sources'])}"
        )
    print(f"{len(words)} of {len(system.vocabulary)} words")


def cmd_describe(args, _):
    from neuraleq_jax import presets

    path = Path(args.file)
    if not path.is_file():
        raise CommandError(f"preset file {path} does not exist")
    settings, names = presets.read_preset(path)  # a file it cannot read fails before loading
    system = args.load_system(args.workdir)
    if system.layout != DEFAULT_LAYOUT:
        settings, names = presets.read_preset(path, layout=system.layout)
    described = system.describe(np.asarray(settings), k=args.k)
    if args.format == "json":
        entries = [
            {"setting": name, "words": [{"word": w, "distance_db": d} for w, d in words]}
            for name, words in zip(names, described)
        ]
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    for index, (name, words) in enumerate(zip(names, described)):
        label = name or f"setting {index + 1}"
        print(f"{label}: " + ", ".join(f"{w} ({d:.2f} dB)" for w, d in words))


def add_plot(commands: Commands) -> None:
    command = commands.add(
        "plot",
        "Plot the response curves of words, or the word map (--map).",
        [
            "neuraleq plot warm bright --out words.png",
            "neuraleq plot warm --centre --out warm.png",
            "neuraleq plot --map --out map.png",
        ],
        cmd_plot,
        output=False,
        seed=False,
    )
    command.add_argument(
        "terms", nargs="*", help="words or blends, one curve each ('warm', '0.7 warm + 0.3 bright')"
    )
    command.add_argument(
        "--map",
        action="store_true",
        help="draw the vocabulary's 2-D word map (sized by confidence)",
    )
    command.add_argument("--out", required=True, help="PNG file to write")
    command.add_argument("--title", default=None, help="the figure's title (default: none)")
    add_setting_options(command, what="each curve")


def add_words(commands: Commands) -> None:
    command = commands.add(
        "words",
        "List the model's words (with a PREFIX: those starting with it), "
        "with their confidence, contributors and sources.",
        ["neuraleq words", "neuraleq words mu", "neuraleq words --format json"],
        cmd_words,
        output=False,
        seed=False,
    )
    command.add_argument("prefix", nargs="?", default="", help="list only words starting with it")
    command.add_argument(
        "--format", choices=("table", "json"), default="table", help="output (default table)"
    )


def add_describe(commands: Commands) -> None:
    command = commands.add(
        "describe",
        "Name the words nearest the settings of a preset file (JSON, CSV or Equalizer APO).",
        ["neuraleq describe preset.json", "neuraleq describe eq.txt -k 3"],
        cmd_describe,
        output=False,
        seed=False,
    )
    command.add_argument("file", help="preset file (.json, .csv, .txt/.apo)")
    command.add_argument("-k", type=positive_int, default=5, help="words per setting (5)")
    command.add_argument(
        "--format", choices=("table", "json"), default="table", help="output (default table)"
    )
