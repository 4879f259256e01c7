"""Preset export and import that round-trip with other EQ programs; files are written atomically.

Every format is one :class:`PresetFormat` record in :data:`PRESET_FORMATS` (its name, file
suffixes, MIME type, whether it holds one setting, its writer, parser and detector): a new
format is one entry there. ``FORMATS``, ``ONE_SETTING_FORMATS``, ``SUFFIX_FORMATS``,
``FILE_SUFFIXES`` and ``MEDIA_TYPES`` are views of the records.

- ``json``: ours, ``{"format": "neuraleq-preset", "version": 1, "sample_rate_hz": ...,
  "presets": [{"name": ..., "preamp_db": ..., "bands": [{"band": 1, "type": "low_shelf",
  "frequency_hz": ..., "gain_db": ..., "q": ...}, ...]}]}``; exact (float32 round trip).
- ``csv``: a header ``name,band1_gain,…,band5_q,preamp_db`` and one row per setting; exact.
- ``apo``: Equalizer APO ``config.txt`` / AutoEQ ``ParametricEQ.txt`` (``Preamp: -X dB``,
  ``Filter 1: ON LSC Fc 120.00 Hz Gain 3.50 dB Q 0.7100``); rounded to 0.01 Hz, 0.01 dB, 1e-4 Q.
- ``rew``: Room EQ Wizard "filter settings" text (Generic equaliser), same filter lines.
- ``easyeffects``: an EasyEffects output preset JSON holding one equalizer (bands in its
  ``APO (DR)`` mode, the RBJ design, so the response is ours).

``apo``, ``rew`` and ``easyeffects`` hold exactly one setting (the program holds one EQ whose
filters add up). Every written preset carries a preamp of minus the response's largest boost,
so playback through it cannot clip. Names are written inert in every format
(:func:`~neuraleq_jax.presets.formats.inert_text`: one line, no control characters; a CSV
name that a spreadsheet would take for a formula starts with ``'``), so a name cannot add a
line that Equalizer APO obeys. :func:`read_preset_file` reads every format (UTF-8 with or
without a byte-order mark, or UTF-16 with one, as Windows Notepad saves "Unicode"), and the
variants other programs write (see :mod:`neuraleq_jax.presets.formats`), and says what it
ignored or approximated; a file whose filters are not one per band of the layout (say
AutoEQ's ten peaking filters) is refused, or with ``fit=True`` our bands are fitted to its
response.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from neuraleq_jax.fileio import atomic_write_text
from neuraleq_jax.model import paramspace
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout
from neuraleq_jax.presets import formats, writers

# the mapping of foreign filters onto the layout is part of this module's API too
from neuraleq_jax.presets.mapping import filters_to_settings
from neuraleq_jax.presets.writers import JSON_FORMAT_TAG


@dataclasses.dataclass
class PresetImport:
    """A preset file read back: ``settings [N, P]`` in range, their names, the format found,
    the file's preamp (dB, None where the format has none), notes on what was ignored or
    approximated, and the RMS error (dB) of a fit where one was made."""

    settings: np.ndarray
    names: list[str]
    format: str
    preamp_db: float | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    fit_rms_db: float | None = None


def parse_json(text: str, layout: EQLayout = DEFAULT_LAYOUT) -> tuple[np.ndarray, list[str]]:
    """Our JSON preset text → ``(settings [N, P], names)``."""
    document = _load_json(text)
    if not isinstance(document, dict) or document.get("format") != JSON_FORMAT_TAG:
        raise ValueError(
            f'not a neuraleq preset: expected a JSON object with "format": "{JSON_FORMAT_TAG}"'
        )
    rows, names = [], []
    for p, preset in enumerate(document.get("presets", [])):
        bands = preset.get("bands", []) if isinstance(preset, dict) else []
        if len(bands) != layout.n_bands:
            raise ValueError(f"preset {p}: {len(bands)} bands, the layout has {layout.n_bands}")
        row = []
        for b, (band, kind) in enumerate(zip(bands, layout.kinds)):
            if not isinstance(band, dict) or band.get("type") != kind:
                raise ValueError(
                    f"preset {p} band {b + 1}: type "
                    f"{band.get('type') if isinstance(band, dict) else band!r}, "
                    f"the layout expects {kind!r}"
                )
            try:
                row += [float(band["gain_db"]), float(band["frequency_hz"]), float(band["q"])]
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(
                    f"preset {p} band {b + 1}: needs numeric gain_db, frequency_hz and q ({error})"
                ) from None
        rows.append(row)
        names.append(str(preset.get("name", f"preset {p + 1}")))
    if not rows:
        raise ValueError("the JSON preset holds no presets")
    return paramspace.validate(np.array(rows), layout, name="preset"), names


def parse_csv(text: str, layout: EQLayout = DEFAULT_LAYOUT) -> tuple[np.ndarray, list[str]]:
    """CSV preset text → ``(settings [N, P], names)``."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise ValueError("the CSV preset holds no rows")
    names = [row.get("name") or f"preset {i + 1}" for i, row in enumerate(rows)]
    return paramspace.from_dicts(rows, layout), names


def _load_json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"preset is not valid JSON: {error}") from None


# ---------------------------------------------------------------- parsers and detectors
# A parser takes the text, the layout and whether to fit a foreign layout → PresetImport (its
# format is filled in by parse_preset_text); a detector says whether text is of its format,
# and the detectors exclude each other, so their order does not matter.


def _import_json(text: str, layout: EQLayout, fit: bool) -> PresetImport:
    return PresetImport(*parse_json(text, layout), format="json")


def _import_csv(text: str, layout: EQLayout, fit: bool) -> PresetImport:
    return PresetImport(*parse_csv(text, layout), format="csv")


def _import_filters(found: formats.FilterList, layout: EQLayout, fit: bool) -> PresetImport:
    settings, rms, notes = filters_to_settings(found, layout, fit=fit)
    return PresetImport(
        settings, [found.name or "preset 1"], "", found.preamp_db, found.notes + notes, rms
    )


def _import_filter_text(text: str, layout: EQLayout, fit: bool) -> PresetImport:
    return _import_filters(formats.parse_filter_text(text), layout, fit)


def _import_easyeffects(text: str, layout: EQLayout, fit: bool) -> PresetImport:
    return _import_filters(formats.parse_easyeffects(_load_json(text)), layout, fit)


def _is_json(text: str) -> bool:
    return text.lstrip().startswith("{")


def _is_ours(text: str) -> bool:
    if not _is_json(text):
        return False
    document = _load_json(text)
    return isinstance(document, dict) and document.get("format") == JSON_FORMAT_TAG


def _is_easyeffects(text: str) -> bool:
    return (
        _is_json(text) and not _is_ours(text) and formats.looks_like_easyeffects(_load_json(text))
    )


def _is_csv(text: str) -> bool:
    first_line = text.lstrip().split("\n", 1)[0]
    return "band1_gain" in first_line and "," in first_line


def _is_rew(text: str) -> bool:
    return not _is_json(text) and not _is_csv(text) and formats.looks_like_rew(text)


def _is_apo(text: str) -> bool:
    """Plain filter lines: what no other format claims, JSON aside."""
    return not _is_json(text) and not _is_csv(text) and not formats.looks_like_rew(text)


# ---------------------------------------------------------------- the formats, one record each


@dataclasses.dataclass(frozen=True)
class PresetFormat:
    """Everything the package knows of one preset format.

    ``name``: what ``format=``, ``--to`` and ``--format`` take; ``title``: the program's name
    in messages; ``suffix``: a file of it as the web page downloads it; ``path_suffixes``: the
    suffixes that name it in a path (each names one format at most); ``media_type``: its MIME
    type; ``one_setting``: a file holds exactly one setting (the program holds one EQ);
    ``write(settings [N, P], names, layout, preamp) -> text``; ``parse(text, layout, fit) ->``
    :class:`PresetImport`; ``detect(text) -> bool``: the text is of this format.
    """

    name: str
    title: str
    suffix: str
    path_suffixes: tuple[str, ...]
    media_type: str
    one_setting: bool
    write: Callable[[np.ndarray, list[str], EQLayout, bool], str]
    parse: Callable[[str, EQLayout, bool], PresetImport]
    detect: Callable[[str], bool]


PRESET_FORMATS = {
    record.name: record
    for record in (
        PresetFormat(
            name="json",
            title="neuraleq",
            suffix=".json",
            path_suffixes=(".json",),
            media_type="application/json",
            one_setting=False,
            write=writers.to_json,
            parse=_import_json,
            detect=_is_ours,
        ),
        PresetFormat(
            name="csv",
            title="CSV",
            suffix=".csv",
            path_suffixes=(".csv",),
            media_type="text/csv",
            one_setting=False,
            write=writers.to_csv,
            parse=_import_csv,
            detect=_is_csv,
        ),
        PresetFormat(
            name="apo",
            title="Equalizer APO",
            suffix=".txt",
            path_suffixes=(".txt", ".apo", ".cfg"),
            media_type="text/plain",
            one_setting=True,
            write=writers.to_apo,
            parse=_import_filter_text,
            detect=_is_apo,
        ),
        PresetFormat(
            name="rew",
            title="REW",
            suffix=".txt",
            path_suffixes=(".rew",),
            media_type="text/plain",
            one_setting=True,
            write=writers.to_rew,
            parse=_import_filter_text,
            detect=_is_rew,
        ),
        PresetFormat(
            name="easyeffects",
            title="EasyEffects",
            suffix=".json",
            path_suffixes=(),
            media_type="application/json",
            one_setting=True,
            write=writers.to_easyeffects,
            parse=_import_easyeffects,
            detect=_is_easyeffects,
        ),
    )
}
FORMATS = tuple(PRESET_FORMATS)
ONE_SETTING_FORMATS = tuple(name for name, f in PRESET_FORMATS.items() if f.one_setting)
SUFFIX_FORMATS = {s: f.name for f in PRESET_FORMATS.values() for s in f.path_suffixes}
FILE_SUFFIXES = {name: f.suffix for name, f in PRESET_FORMATS.items()}
MEDIA_TYPES = {name: f.media_type for name, f in PRESET_FORMATS.items()}


def preset_format(name: str) -> PresetFormat:
    """The record of format ``name``; an unknown name is refused naming the accepted ones."""
    try:
        return PRESET_FORMATS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown preset format {name!r}; accepted: {', '.join(FORMATS)}"
        ) from None


# ---------------------------------------------------------------- text and files


def preset_text(
    settings, format: str, *, names=None, preamp: bool = True, layout: EQLayout = DEFAULT_LAYOUT
) -> str:
    """The text of a preset file in ``format`` (one of :data:`FORMATS`) for settings ``[P]``,
    ``[N, P]`` or named dicts; a one-setting format takes exactly one. ``preamp=False``
    leaves out the ``Preamp:`` line of APO and REW text."""
    record = preset_format(format)
    array = writers.as_settings(settings, layout)
    if record.one_setting and len(array) != 1:
        raise ValueError(
            f"the {record.name} format ({record.title}) holds one setting (its filters add "
            f"up); got {len(array)}: export them one per file, or use json or csv for several"
        )
    return record.write(array, writers.preset_names(names, len(array)), layout, preamp)


def apo_text(
    setting, *, name: str | None = None, preamp: bool = True, layout: EQLayout = DEFAULT_LAYOUT
) -> str:
    """Equalizer APO / AutoEQ text for ONE setting ``[P]`` (or a one-row batch / dict)."""
    return preset_text(setting, "apo", names=name, preamp=preamp, layout=layout)


def rew_text(setting, *, name: str | None = None, layout: EQLayout = DEFAULT_LAYOUT) -> str:
    """REW filter-settings text for ONE setting ``[P]``."""
    return preset_text(setting, "rew", names=name, layout=layout)


def easyeffects_text(setting, *, layout: EQLayout = DEFAULT_LAYOUT) -> str:
    """EasyEffects output-preset JSON for ONE setting ``[P]``."""
    return preset_text(setting, "easyeffects", layout=layout)


def _format_of(path: Path, format: str | None) -> str:
    if format is not None:
        return preset_format(format).name
    try:
        return SUFFIX_FORMATS[path.suffix.lower()]
    except KeyError:
        raise ValueError(
            f"cannot tell the preset format from {path.name!r}; use a suffix in "
            f"{sorted(SUFFIX_FORMATS)} or pass format= one of {FORMATS}"
        ) from None


def write_preset(
    path,
    settings,
    *,
    format: str | None = None,
    names=None,
    preamp: bool = True,
    layout: EQLayout = DEFAULT_LAYOUT,
) -> Path:
    """Export settings (``[P]``, ``[N, P]`` or named dicts) to ``path``, atomically.

    ``format`` is one of :data:`FORMATS`; by default it follows the suffix (``.json`` ours,
    ``.txt``/``.apo``/``.cfg`` Equalizer APO, ``.rew`` REW, ``.csv``; EasyEffects needs
    ``format="easyeffects"``). Returns the path written.
    """
    path = Path(path)
    text = preset_text(
        settings, _format_of(path, format), names=names, preamp=preamp, layout=layout
    )
    return atomic_write_text(path, text)


def detect_format(text: str) -> str:
    """The format of preset text, from its content (``.txt`` may be APO or REW, ``.json`` ours
    or EasyEffects')."""
    text = text.removeprefix("\ufeff")
    for record in PRESET_FORMATS.values():
        if record.detect(text):
            return record.name
    raise ValueError(
        f'JSON preset of unknown kind: expected ours ("format": '
        f"\"{JSON_FORMAT_TAG}\") or an EasyEffects preset ('output' key)"
    )


def parse_preset_text(
    text: str, format: str | None = None, *, layout: EQLayout = DEFAULT_LAYOUT, fit: bool = False
) -> PresetImport:
    """Preset text in any of :data:`FORMATS` (detected from the content when ``format`` is
    None) → :class:`PresetImport`. Raises ValueError naming what is wrong."""
    text = text.removeprefix("\ufeff")
    record = preset_format(format or detect_format(text))
    return dataclasses.replace(record.parse(text, layout, fit), format=record.name)


def decode_preset_bytes(data: bytes, where: str = "the preset") -> str:
    """A preset file's bytes → its text: UTF-8 with or without a byte-order mark, or UTF-16
    (little or big endian) with one, as Windows Notepad saves "Unicode"."""
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    try:
        return data.decode("utf-16" if utf16 else "utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(
            f"{where} is not text in UTF-8, or in UTF-16 with a byte-order mark "
            f"({'UTF-16' if utf16 else 'UTF-8'} decoding failed)"
        ) from None


def read_preset_file(
    path, *, format: str | None = None, layout: EQLayout = DEFAULT_LAYOUT, fit: bool = False
) -> PresetImport:
    """Read a preset file of any supported format (see :func:`parse_preset_text`), in
    UTF-8 or UTF-16 (see :func:`decode_preset_bytes`)."""
    path = Path(path)
    try:
        text = decode_preset_bytes(path.read_bytes(), f"preset file {path}")
    except FileNotFoundError:
        raise FileNotFoundError(f"preset file {path} does not exist") from None
    try:
        return parse_preset_text(text, format, layout=layout, fit=fit)
    except ValueError as error:
        raise ValueError(f"{path.name}: {error}") from None


def read_preset(
    path, *, format: str | None = None, layout: EQLayout = DEFAULT_LAYOUT, fit: bool = False
) -> tuple[np.ndarray, list[str]]:
    """Read a preset file: ``(settings [N, P], names)`` (notes: :func:`read_preset_file`)."""
    found = read_preset_file(path, format=format, layout=layout, fit=fit)
    return found.settings, found.names
