"""Preset export and import: JSON, Equalizer APO text, CSV; files are written atomically.

Any result of the library can be exported: an array ``[P]`` / ``[N, P]`` of physical settings or
the list of named dicts the facade returns. Every format reads back with :func:`read_preset`:

- JSON: ``{"format": "neuraleq-preset", "version": 1, "sample_rate_hz": ..., "presets":
  [{"name": ..., "bands": [{"band": 1, "type": "low_shelf", "frequency_hz": ..., "gain_db": ...,
  "q": ...}, ...]}]}``; values are exact (float32 round trip).
- Equalizer APO: one setting per file, ``Filter 1: ON LSC Fc 120.00 Hz Gain 3.50 dB Q 0.7100``
  lines (LSC low shelf, PK peaking, HSC high shelf), plus an optional ``Preamp`` line that lowers
  the level by the response's peak boost so the EQ cannot clip. Rounded to 0.01 Hz, 0.01 dB
  and 1e-4 in Q.
- CSV: a header ``name,band1_gain,band1_freq,…,band5_q`` and one row per setting; exact.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from neuraleq_jax import paramspace, response
from neuraleq_jax.fileio import atomic_write_text
from neuraleq_jax.paramspace import DEFAULT_LAYOUT, EQLayout

FORMATS = ("json", "apo", "csv")
SUFFIX_FORMATS = {".json": "json", ".txt": "apo", ".apo": "apo", ".cfg": "apo", ".csv": "csv"}
APO_TYPES = {"low_shelf": "LSC", "peaking": "PK", "high_shelf": "HSC"}
JSON_FORMAT_TAG = "neuraleq-preset"

_APO_FILTER = re.compile(
    r"^Filter\s*(?P<index>\d+)?\s*:\s*(?P<state>ON|OFF)\s+(?P<type>[A-Z]+)\s+Fc\s+(?P<fc>\S+)\s*Hz"
    r"\s+Gain\s+(?P<gain>\S+)\s*dB\s+Q\s+(?P<q>\S+)\s*$", re.IGNORECASE)


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


def preset_dict(settings, *, names=None, layout: EQLayout = DEFAULT_LAYOUT,
                sample_rate: float = response.DEFAULT_SAMPLE_RATE) -> dict:
    """The JSON preset document (a dict) for settings ``[P]``/``[N, P]`` or named dicts."""
    array = _as_settings(settings, layout)
    presets = []
    for name, row in zip(_names(names, len(array)), array.astype(np.float64)):
        bands = [{"band": i + 1, "type": kind, "frequency_hz": float(freq), "gain_db": float(gain),
                  "q": float(q)}
                 for i, (kind, (gain, freq, q)) in enumerate(zip(layout.kinds, row.reshape(-1, 3)))]
        presets.append({"name": name, "bands": bands})
    return {"format": JSON_FORMAT_TAG, "version": 1, "sample_rate_hz": float(sample_rate),
            "presets": presets}


def peak_boost_db(setting_P, layout: EQLayout = DEFAULT_LAYOUT,
                  sample_rate: float = response.DEFAULT_SAMPLE_RATE) -> float:
    """Largest boost (dB, >= 0) of a setting's response on a fine 20 Hz–20 kHz grid."""
    grid = response.reference_frequencies(2048)
    curve = response.magnitude_response_db(np.asarray(setting_P, np.float32), grid, sample_rate,
                                           layout)
    return max(0.0, float(np.max(curve)))


def apo_text(setting, *, name: str | None = None, preamp: bool = True,
             layout: EQLayout = DEFAULT_LAYOUT) -> str:
    """Equalizer APO configuration text for ONE setting ``[P]`` (or a one-row batch / dict)."""
    array = _as_settings(setting, layout)
    if len(array) != 1:
        raise ValueError(f"an Equalizer APO file holds one setting (its filters add up); got "
                         f"{len(array)}: export them one per file, or use JSON/CSV")
    lines = [f"# {name or 'neuraleq_jax preset'}"]
    if preamp:
        lines.append(f"Preamp: {-peak_boost_db(array[0], layout):.2f} dB")
    for i, (kind, (gain, freq, q)) in enumerate(zip(layout.kinds, array[0].reshape(-1, 3))):
        lines.append(f"Filter {i + 1}: ON {APO_TYPES[kind]} Fc {freq:.2f} Hz Gain {gain:.2f} dB "
                     f"Q {q:.4f}")
    return "\n".join(lines) + "\n"


def csv_text(settings, *, names=None, layout: EQLayout = DEFAULT_LAYOUT,
             header: bool = True) -> str:
    """CSV text: header ``name`` + the parameter names (unless ``header=False``, for text
    appended to a file already started), one row per setting."""
    array = _as_settings(settings, layout)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(("name",) + layout.param_names)
    for name, row in zip(_names(names, len(array)), array.astype(np.float64)):
        writer.writerow([name] + [repr(float(v)) for v in row])
    return buffer.getvalue()


def _format_of(path: Path, format: str | None) -> str:
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"unknown preset format {format!r}; accepted: {FORMATS}")
        return format
    try:
        return SUFFIX_FORMATS[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"cannot tell the preset format from {path.name!r}; use a suffix in "
                         f"{sorted(SUFFIX_FORMATS)} or pass format= one of {FORMATS}") from None


def write_preset(path, settings, *, format: str | None = None, names=None, preamp: bool = True,
                 layout: EQLayout = DEFAULT_LAYOUT) -> Path:
    """Export settings (``[P]``, ``[N, P]`` or named dicts) to ``path``, atomically.

    ``format`` is ``"json"``, ``"apo"`` or ``"csv"``; by default it follows the suffix (``.json``;
    ``.txt``/``.apo``/``.cfg`` for Equalizer APO; ``.csv``). Returns the path written.
    """
    path = Path(path)
    kind = _format_of(path, format)
    if kind == "json":
        text = json.dumps(preset_dict(settings, names=names, layout=layout), indent=2) + "\n"
    elif kind == "apo":
        name = names if isinstance(names, str) or names is None else _names(names, 1)[0]
        text = apo_text(settings, name=name, preamp=preamp, layout=layout)
    else:
        text = csv_text(settings, names=names, layout=layout)
    return atomic_write_text(path, text)


def parse_json(text: str, layout: EQLayout = DEFAULT_LAYOUT) -> tuple[np.ndarray, list[str]]:
    """JSON preset text → ``(settings [N, P], names)``."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"preset is not valid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != JSON_FORMAT_TAG:
        raise ValueError(f"not a neuraleq preset: expected a JSON object with "
                         f"\"format\": \"{JSON_FORMAT_TAG}\"")
    rows, names = [], []
    for p, preset in enumerate(document.get("presets", [])):
        bands = preset.get("bands", [])
        if len(bands) != layout.n_bands:
            raise ValueError(f"preset {p}: {len(bands)} bands, the layout has {layout.n_bands}")
        row = []
        for b, (band, kind) in enumerate(zip(bands, layout.kinds)):
            if band.get("type") != kind:
                raise ValueError(f"preset {p} band {b + 1}: type {band.get('type')!r}, the "
                                 f"layout expects {kind!r}")
            try:
                row += [float(band["gain_db"]), float(band["frequency_hz"]), float(band["q"])]
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"preset {p} band {b + 1}: needs numeric gain_db, frequency_hz "
                                 f"and q ({error})") from None
        rows.append(row)
        names.append(str(preset.get("name", f"preset {p + 1}")))
    if not rows:
        raise ValueError("the JSON preset holds no presets")
    return paramspace.validate(np.array(rows), layout, name="preset"), names


def parse_apo(text: str, layout: EQLayout = DEFAULT_LAYOUT) -> tuple[np.ndarray, list[str]]:
    """Equalizer APO text (as written by :func:`apo_text`) → ``(settings [1, P], [name])``."""
    expected = [APO_TYPES[kind] for kind in layout.kinds]
    row, name = [], "preset 1"
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.lower().startswith("preamp"):
            continue
        if line.startswith("#"):
            name = line[1:].strip() or name
            continue
        match = _APO_FILTER.match(line)
        if match is None:
            raise ValueError(f"line {number}: {line!r} is not a 'Filter N: ON TYPE Fc F Hz Gain "
                             f"G dB Q Q' line")
        band = len(row) // 3
        if band >= layout.n_bands or match["type"].upper() != expected[band]:
            raise ValueError(f"line {number}: filter type {match['type']} where the layout "
                             f"expects {expected[band] if band < layout.n_bands else 'no more'} "
                             f"(bands: {', '.join(expected)})")
        gain = 0.0 if match["state"].upper() == "OFF" else float(match["gain"])
        row += [gain, float(match["fc"]), float(match["q"])]
    if len(row) != layout.n_params:
        raise ValueError(f"found {len(row) // 3} filters; the layout has {layout.n_bands} "
                         f"({', '.join(expected)})")
    return paramspace.validate(np.array([row]), layout, name="preset"), [name]


def parse_csv(text: str, layout: EQLayout = DEFAULT_LAYOUT) -> tuple[np.ndarray, list[str]]:
    """CSV preset text → ``(settings [N, P], names)``."""
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    if not rows:
        raise ValueError("the CSV preset holds no rows")
    names = [row.get("name") or f"preset {i + 1}" for i, row in enumerate(rows)]
    return paramspace.from_dicts(rows, layout), names


def read_preset(path, *, format: str | None = None,
                layout: EQLayout = DEFAULT_LAYOUT) -> tuple[np.ndarray, list[str]]:
    """Read a preset file written by :func:`write_preset`: ``(settings [N, P], names)``."""
    path = Path(path)
    kind = _format_of(path, format)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"preset file {path} does not exist") from None
    parser = {"json": parse_json, "apo": parse_apo, "csv": parse_csv}[kind]
    return parser(text, layout)
