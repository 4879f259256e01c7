"""Preset export and import that round-trip with other EQ programs; files are written atomically.

Formats (``FORMATS``), one setting per file where the program holds one EQ:

- ``json``: ours, ``{"format": "neuraleq-preset", "version": 1, "sample_rate_hz": ...,
  "presets": [{"name": ..., "preamp_db": ..., "bands": [{"band": 1, "type": "low_shelf",
  "frequency_hz": ..., "gain_db": ..., "q": ...}, ...]}]}``; exact (float32 round trip).
- ``csv``: a header ``name,band1_gain,…,band5_q,preamp_db`` and one row per setting; exact.
- ``apo``: Equalizer APO ``config.txt`` / AutoEQ ``ParametricEQ.txt`` (``Preamp: -X dB``,
  ``Filter 1: ON LSC Fc 120.00 Hz Gain 3.50 dB Q 0.7100``); rounded to 0.01 Hz, 0.01 dB, 1e-4 Q.
- ``rew``: Room EQ Wizard "filter settings" text (Generic equaliser), same filter lines.
- ``easyeffects``: an EasyEffects output preset JSON holding one equalizer (bands in its
  ``APO (DR)`` mode, the RBJ design, so the response is ours).

Every written preset carries a preamp of minus the response's largest boost, so playback
through it cannot clip. :func:`read_preset_file` reads every format (and the variants other
programs write, see :mod:`neuraleq_jax.presets.formats`) and says what it ignored or
approximated; a file whose filters are not one per band of the layout (say AutoEQ's ten
peaking filters) is refused, or with ``fit=True`` our bands are fitted to its response.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from neuraleq_jax.fileio import atomic_write_text
from neuraleq_jax.model import paramspace, response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout
from neuraleq_jax.presets import formats
from neuraleq_jax.presets.formats import Filter

# the mapping of foreign filters onto the layout is part of this module's API too
from neuraleq_jax.presets.mapping import filters_to_settings

FORMATS = ("json", "csv", "apo", "rew", "easyeffects")
ONE_SETTING_FORMATS = ("apo", "rew", "easyeffects")
SUFFIX_FORMATS = {
    ".json": "json",
    ".txt": "apo",
    ".apo": "apo",
    ".cfg": "apo",
    ".csv": "csv",
    ".rew": "rew",
}
FILE_SUFFIXES = {
    "json": ".json",
    "csv": ".csv",
    "apo": ".txt",
    "rew": ".txt",
    "easyeffects": ".json",
}
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv",
    "apo": "text/plain",
    "rew": "text/plain",
    "easyeffects": "application/json",
}
APO_TYPES = formats.APO_TOKENS
JSON_FORMAT_TAG = "neuraleq-preset"


def _as_settings(settings, layout: EQLayout) -> np.ndarray:
    """Array ``[P]``/``[N, P]`` or list of named dicts → validated float32 ``[N, P]``."""
    if isinstance(settings, Mapping):
        settings = [settings]
    if isinstance(settings, Sequence) and settings and isinstance(settings[0], Mapping):
        return paramspace.from_dicts(settings, layout)
    array = paramspace.validate(settings, layout, name="settings")
    return array.reshape(-1, layout.n_params)


def _names(names, count: int) -> list[str]:
    if names is None:
        return [f"preset {i + 1}" for i in range(count)]
    names = [names] if isinstance(names, str) else [str(n) for n in names]
    if len(names) != count:
        raise ValueError(f"got {len(names)} names for {count} settings")
    return names


def preset_dict(
    settings,
    *,
    names=None,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> dict:
    """The JSON preset document (a dict) for settings ``[P]``/``[N, P]`` or named dicts."""
    array = _as_settings(settings, layout)
    presets, preamps_N = [], preamp_db(array, layout, sample_rate)
    for name, row, preamp in zip(_names(names, len(array)), array.astype(np.float64), preamps_N):
        bands = [
            {
                "band": i + 1,
                "type": kind,
                "frequency_hz": float(freq),
                "gain_db": float(gain),
                "q": float(q),
            }
            for i, (kind, (gain, freq, q)) in enumerate(zip(layout.kinds, row.reshape(-1, 3)))
        ]
        presets.append({"name": name, "preamp_db": float(preamp), "bands": bands})
    return {
        "format": JSON_FORMAT_TAG,
        "version": 1,
        "sample_rate_hz": float(sample_rate),
        "presets": presets,
    }


@functools.partial(jax.jit, static_argnames=("layout", "sample_rate"))
def _peaks_db(settings_NxP, layout: EQLayout, sample_rate: float):
    grid_F = response.reference_frequencies(2048)
    curves_NxF = response.magnitude_response_db(settings_NxP, grid_F, sample_rate, layout)
    return jnp.max(curves_NxF, axis=-1)


def peak_boost_db(
    settings, layout: EQLayout = DEFAULT_LAYOUT, sample_rate: float = response.DEFAULT_SAMPLE_RATE
):
    """Largest boost (dB, >= 0) of each setting's response on a fine 20 Hz–20 kHz grid: a
    float for one setting ``[P]``, an array ``[N]`` for ``[N, P]`` (one compiled call)."""
    array = np.asarray(settings, np.float32)
    peaks = np.maximum(
        np.asarray(
            _peaks_db(array.reshape(-1, array.shape[-1]), layout, float(sample_rate)), np.float64
        ),
        0.0,
    )
    return float(peaks[0]) if array.ndim == 1 else peaks


def preamp_db(
    settings, layout: EQLayout = DEFAULT_LAYOUT, sample_rate: float = response.DEFAULT_SAMPLE_RATE
):
    """The preamp written with a preset: minus its largest boost, rounded up to 0.01 dB
    (so a rounded preamp never leaves a boost above 0 dB); per setting for ``[N, P]``."""
    return -np.ceil(peak_boost_db(settings, layout, sample_rate) * 100.0) / 100.0 + 0.0


def csv_text(
    settings, *, names=None, layout: EQLayout = DEFAULT_LAYOUT, header: bool = True
) -> str:
    """CSV text: header ``name`` + the parameter names (unless ``header=False``, for text
    appended to a file already started), one row per setting."""
    array = _as_settings(settings, layout)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(("name",) + layout.param_names + ("preamp_db",))
    preamps_N = preamp_db(array, layout)
    for name, row, preamp in zip(_names(names, len(array)), array.astype(np.float64), preamps_N):
        writer.writerow([name] + [repr(float(v)) for v in row] + [float(preamp)])
    return buffer.getvalue()


def setting_filters(setting_P, layout: EQLayout = DEFAULT_LAYOUT) -> list[Filter]:
    """One physical setting ``[P]`` → its bands as :class:`~formats.Filter` s."""
    row = np.asarray(setting_P, np.float64).reshape(layout.n_bands, 3)
    return [
        Filter(kind, float(freq), float(gain), float(q))
        for kind, (gain, freq, q) in zip(layout.kinds, row)
    ]


def _one_setting(setting, layout: EQLayout, program: str) -> np.ndarray:
    array = _as_settings(setting, layout)
    if len(array) != 1:
        raise ValueError(
            f"an {program} preset holds one setting (its filters add up); got "
            f"{len(array)}: export them one per file, or use JSON/CSV"
        )
    return array[0]


def apo_text(
    setting, *, name: str | None = None, preamp: bool = True, layout: EQLayout = DEFAULT_LAYOUT
) -> str:
    """Equalizer APO / AutoEQ text for ONE setting ``[P]`` (or a one-row batch / dict)."""
    row = _one_setting(setting, layout, "Equalizer APO")
    text = formats.apo_text(
        setting_filters(row, layout), preamp_db(row, layout), name or "neuraleq_jax preset"
    )
    if not preamp:
        text = "\n".join(line for line in text.split("\n") if not line.startswith("Preamp"))
    return text


def rew_text(setting, *, name: str | None = None, layout: EQLayout = DEFAULT_LAYOUT) -> str:
    """REW filter-settings text for ONE setting ``[P]``."""
    row = _one_setting(setting, layout, "REW")
    return formats.rew_text(
        setting_filters(row, layout), preamp_db(row, layout), name or "neuraleq_jax preset"
    )


def easyeffects_text(setting, *, layout: EQLayout = DEFAULT_LAYOUT) -> str:
    """EasyEffects output-preset JSON for ONE setting ``[P]``."""
    row = _one_setting(setting, layout, "EasyEffects")
    document = formats.easyeffects_document(setting_filters(row, layout), preamp_db(row, layout))
    return json.dumps(document, indent=4) + "\n"


def preset_text(
    settings, format: str, *, names=None, preamp: bool = True, layout: EQLayout = DEFAULT_LAYOUT
) -> str:
    """The text of a preset file in ``format`` (one of :data:`FORMATS`)."""
    if format not in FORMATS:
        raise ValueError(f"unknown preset format {format!r}; accepted: {', '.join(FORMATS)}")
    if format == "json":
        return json.dumps(preset_dict(settings, names=names, layout=layout), indent=2) + "\n"
    if format == "csv":
        return csv_text(settings, names=names, layout=layout)
    name = names if isinstance(names, str) or names is None else _names(names, 1)[0]
    if format == "apo":
        return apo_text(settings, name=name, preamp=preamp, layout=layout)
    if format == "rew":
        return rew_text(settings, name=name, layout=layout)
    return easyeffects_text(settings, layout=layout)


def _format_of(path: Path, format: str | None) -> str:
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"unknown preset format {format!r}; accepted: {', '.join(FORMATS)}")
        return format
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


def detect_format(text: str) -> str:
    """The format of preset text, from its content (``.txt`` may be APO or REW, ``.json`` ours
    or EasyEffects')."""
    head = text.lstrip()
    if head.startswith("{"):
        document = _load_json(text)
        if isinstance(document, dict) and document.get("format") == JSON_FORMAT_TAG:
            return "json"
        if formats.looks_like_easyeffects(document):
            return "easyeffects"
        raise ValueError(
            f'JSON preset of unknown kind: expected ours ("format": '
            f"\"{JSON_FORMAT_TAG}\") or an EasyEffects preset ('output' key)"
        )
    first_line = head.split("\n", 1)[0]
    if "band1_gain" in first_line and "," in first_line:
        return "csv"
    return "rew" if formats.looks_like_rew(text) else "apo"


def parse_preset_text(
    text: str, format: str | None = None, *, layout: EQLayout = DEFAULT_LAYOUT, fit: bool = False
) -> PresetImport:
    """Preset text in any of :data:`FORMATS` (detected from the content when ``format`` is
    None) → :class:`PresetImport`. Raises ValueError naming what is wrong."""
    kind = format or detect_format(text)
    if kind not in FORMATS:
        raise ValueError(f"unknown preset format {kind!r}; accepted: {', '.join(FORMATS)}")
    if kind == "json":
        settings, names = parse_json(text, layout)
        return PresetImport(settings, names, kind)
    if kind == "csv":
        settings, names = parse_csv(text, layout)
        return PresetImport(settings, names, kind)
    if kind == "easyeffects":
        found = formats.parse_easyeffects(_load_json(text))
    else:
        found = formats.parse_filter_text(text)
    settings, rms, notes = filters_to_settings(found, layout, fit=fit)
    return PresetImport(
        settings, [found.name or "preset 1"], kind, found.preamp_db, found.notes + notes, rms
    )


def read_preset_file(
    path, *, format: str | None = None, layout: EQLayout = DEFAULT_LAYOUT, fit: bool = False
) -> PresetImport:
    """Read a preset file of any supported format (see :func:`parse_preset_text`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FileNotFoundError(f"preset file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ValueError(f"preset file {path} is not UTF-8 text") from None
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


def parse_apo(text: str, layout: EQLayout = DEFAULT_LAYOUT) -> tuple[np.ndarray, list[str]]:
    """Equalizer APO text → ``(settings [1, P], [name])`` (exact mapping only)."""
    found = parse_preset_text(text, "apo", layout=layout)
    return found.settings, found.names
