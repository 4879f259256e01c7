"""``neuraleq apply`` (a word's setting or a preset on an audio file) and ``neuraleq convert``
(presets between formats)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from neuraleq_jax.cli.common import (
    FAILED,
    PRESET_SUFFIXES,
    CommandError,
    Commands,
    add_setting_options,
    positive_int,
    word_setting,
)


def _setting_for(source: str, args) -> tuple[np.ndarray, str]:
    """``(setting [P], what it is)``: one setting of a preset file (``--index``, counted from
    1, when the file holds several), or a word's / compound's setting as generate gives it
    (the variation ``--seed`` draws, or its centre with ``--centre``)."""
    from neuraleq_jax import presets

    path = Path(source)
    if path.suffix.lower() not in PRESET_SUFFIXES:
        if args.index is not None:
            raise CommandError(
                f"--index picks one setting of a preset file; {source!r} is a "
                f"word or description (preset files end in "
                f"{', '.join(PRESET_SUFFIXES)})"
            )
        system = args.load_system(args.workdir)
        what = "the centre" if args.centre else f"variation --seed {args.seed}"
        return word_setting(system, source, args), f"{what} of {source!r}"
    if args.centre or args.seed:
        raise CommandError(
            f"--centre and --seed choose a word's setting; {source} is a preset file, whose "
            f"setting is used as it is (--index picks one of several)"
        )
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
    lines.append(_loudness_line(report))
    lines.append(f"peak: {_dbfs(report.peak_in_dbfs)} in, {_dbfs(report.peak_out_dbfs)} out")
    lines += [f"note: {note}" for note in report.notes]
    if report.clipped_samples:
        lines.append(_clipping_line(report))
    lines.append(
        f"wrote {report.out_path} ({report.format} {report.subtype}, "
        f"{report.channels} channel(s), {report.sample_rate:g} Hz, "
        f"{report.frames / report.sample_rate:.2f} s)"
    )
    return "\n".join(lines)


def _loudness_line(report) -> str:
    if report.match_loudness is not None:
        unit = "LUFS" if report.match_loudness == "lufs" else "dBFS RMS"
        level = "n/a" if report.loudness_in is None else f"{report.loudness_in:.2f} {unit}"
        return (
            f"loudness: matched by {report.match_loudness} ({level}; gain "
            f"{report.loudness_gain_db:+.2f} dB)"
        )
    rms_in, rms_out = _rms_dbfs(report.in_path), _rms_dbfs(report.out_path)
    change = "n/a" if None in (rms_in, rms_out) else f"{rms_out - rms_in:+.2f} dB"
    return f"loudness: RMS level changed by {change} (--match-loudness rms or lufs keeps it)"


def _clipping_line(report) -> str:
    from neuraleq_jax.audio.filtering import FLOAT_SUBTYPES

    if report.subtype in FLOAT_SUBTYPES:
        return (
            f"peaks above full scale: {report.clipped_samples} sample value(s) "
            f"beyond ±1.0, kept by the {report.subtype} file (players may clip "
            f"them); --peaks limit scales the output below 0 dBFS"
        )
    # the report's notes already say how many the format clipped
    return "hint: --peaks limit, a lower --strength or --match-loudness avoids the clipping"


def cmd_apply(args, _):
    import warnings

    from neuraleq_jax.audio import filtering
    from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT

    try:  # the files are checked before the model loads
        filtering.check_files(args.input, args.output, overwrite=args.overwrite)
    except FileExistsError as error:
        raise CommandError(_overwrite_hint(error)) from None
    setting, source = _setting_for(args.source, args)
    try:
        with warnings.catch_warnings():  # the summary states peaks and clipping itself
            warnings.simplefilter("ignore", filtering.ClippingWarning)
            report = filtering.apply_eq_to_file(
                args.input,
                args.output,
                setting,
                strength=args.strength,
                match_loudness=args.match_loudness,
                overwrite=args.overwrite,
                peak_mode=args.peaks,
                progress=sys.stderr.isatty(),  # a bar for a long file, where a person reads it
            )
    except FileExistsError as error:
        raise CommandError(_overwrite_hint(error)) from None
    except filtering.ClippingError as error:
        raise CommandError(
            f"output peak {_dbfs(error.report.peak_out_dbfs)}: {error.report.clipped_samples} "
            f"sample value(s) above full scale, so --peaks error wrote nothing; use --peaks "
            f"limit, a lower --strength or --match-loudness",
            FAILED,
        ) from None
    print(report.to_json() if args.json else apply_summary(report, source, DEFAULT_LAYOUT))


def _overwrite_hint(error: FileExistsError) -> str:
    return str(error).replace("pass overwrite=True", "pass --overwrite")


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
    settings, names = _chosen_settings(found.settings, found.names, args.index, args.input)
    if target in presets.ONE_SETTING_FORMATS and len(settings) > 1:
        raise CommandError(
            f"{args.input} holds {len(settings)} settings and the {target} format "
            f"holds one: choose one with --index N (1 to {len(settings)})"
        )
    if Path(args.output).exists() and not args.overwrite:
        raise CommandError(f"{args.output} exists; pass --overwrite to replace it")
    presets.write_preset(args.output, settings, format=target, names=names)
    print(f"wrote {len(settings)} setting(s) as {target} to {args.output}")


def _chosen_settings(settings, names, index: int | None, source: str):
    """All settings and names, or only the ``index``-th (counted from 1)."""
    if index is None:
        return settings, names
    if not 1 <= index <= len(settings):
        raise CommandError(
            f"--index {index}: {source} holds {len(settings)} setting(s); use 1..{len(settings)}"
        )
    return settings[index - 1 : index], names[index - 1 : index]


def add_apply(commands: Commands) -> None:
    command = commands.add(
        "apply",
        "Apply a word's setting (or a preset file) to an audio file.",
        [
            "neuraleq apply warm in.wav out.wav",
            "neuraleq apply bright in.flac out.flac --strength 0.5 --match-loudness lufs",
            "neuraleq apply warm in.wav out.wav --centre",
            "neuraleq apply preset.json in.wav out.wav",
        ],
        cmd_apply,
        output=False,
        seed=False,
    )
    command.add_argument(
        "source", help="word, compound description or preset file (.json/.csv/.txt)"
    )
    command.add_argument("input", help="input audio file (WAV, FLAC, ...)")
    command.add_argument("output", help="output audio file")
    add_setting_options(command, what="the setting (a word's or a preset's)")
    command.add_argument(
        "--match-loudness",
        choices=("rms", "lufs"),
        default=None,
        help="keep the input's loudness: RMS level or integrated LUFS (default: off)",
    )
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
        type=positive_int,
        default=None,
        help="which setting of a preset file holding several (1 = first)",
    )
    command.add_argument(
        "--json", action="store_true", help="print the full report as JSON instead of the summary"
    )


def add_convert(commands: Commands) -> None:
    from neuraleq_jax.presets.registry import FORMATS as PRESET_FORMATS

    command = commands.add(
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
        type=positive_int,
        default=None,
        help="convert only the N-th setting (1-based) of a JSON/CSV file",
    )
    command.add_argument("--overwrite", action="store_true", help="replace an existing output")
