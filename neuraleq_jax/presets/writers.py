"""Settings → preset text: one writer per format (``to_json``, ``to_csv``, ``to_apo``,
``to_rew``, ``to_easyeffects``; :mod:`neuraleq_jax.presets.registry` holds them in the format
records), and what every writer shares: the settings checked, the names made inert, the
preamp of minus the largest boost.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from neuraleq_jax.model import paramspace, response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout
from neuraleq_jax.presets import formats
from neuraleq_jax.presets.formats import Filter

JSON_FORMAT_TAG = "neuraleq-preset"
SPREADSHEET_FORMULA_STARTS = ("=", "+", "-", "@")  # a CSV cell starting so is a formula


def as_settings(settings, layout: EQLayout) -> np.ndarray:
    """Array ``[P]``/``[N, P]`` or list of named dicts → validated float32 ``[N, P]``."""
    if isinstance(settings, Mapping):
        settings = [settings]
    if isinstance(settings, Sequence) and settings and isinstance(settings[0], Mapping):
        return paramspace.from_dicts(settings, layout)
    array = paramspace.validate(settings, layout, name="settings")
    return array.reshape(-1, layout.n_params)


def preset_names(names, count: int) -> list[str]:
    """``count`` names, each made inert (one line, no control characters): what every writer
    embeds."""
    if names is None:
        return [f"preset {i + 1}" for i in range(count)]
    names = [names] if isinstance(names, str) else [str(n) for n in names]
    if len(names) != count:
        raise ValueError(f"got {len(names)} names for {count} settings")
    return [formats.inert_text(name) for name in names]


def _spreadsheet_text(name: str) -> str:
    """A CSV name that a spreadsheet shows as text: one that would start a formula
    (``=``, ``+``, ``-``, ``@``) gets a leading ``'``."""
    return f"'{name}" if name.startswith(SPREADSHEET_FORMULA_STARTS) else name


def preset_dict(
    settings,
    *,
    names=None,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> dict:
    """The JSON preset document (a dict) for settings ``[P]``/``[N, P]`` or named dicts."""
    array = as_settings(settings, layout)
    presets, preamps_N = [], preamp_db(array, layout, sample_rate)
    for name, row, preamp in zip(
        preset_names(names, len(array)), array.astype(np.float64), preamps_N
    ):
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
    appended to a file already started), one row per setting ``[P]`` of ``[N, P]``; names are
    inert and never start a spreadsheet formula."""
    array = as_settings(settings, layout)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(("name",) + layout.param_names + ("preamp_db",))
    preamps_N = preamp_db(array, layout)
    for name, row, preamp in zip(
        preset_names(names, len(array)), array.astype(np.float64), preamps_N
    ):
        cells = [repr(float(v)) for v in row] + [float(preamp)]
        writer.writerow([_spreadsheet_text(name), *cells])
    return buffer.getvalue()


def setting_filters(setting_P, layout: EQLayout = DEFAULT_LAYOUT) -> list[Filter]:
    """One physical setting ``[P]`` → its bands as :class:`~formats.Filter` s."""
    row = np.asarray(setting_P, np.float64).reshape(layout.n_bands, 3)
    return [
        Filter(kind, float(freq), float(gain), float(q))
        for kind, (gain, freq, q) in zip(layout.kinds, row)
    ]


# ---------------------------------------------------------------- one writer per format
# Each takes validated settings [N, P] (N == 1 for a one-setting format, checked by
# registry.preset_text), their names (already inert: preset_names), the layout and whether to
# write a preamp line, and returns the file's text.


def to_json(settings_NxP, names, layout: EQLayout, preamp: bool) -> str:
    """Our JSON preset document for settings ``[N, P]``, indented, with a final newline."""
    return json.dumps(preset_dict(settings_NxP, names=names, layout=layout), indent=2) + "\n"


def to_csv(settings_NxP, names, layout: EQLayout, preamp: bool) -> str:
    """Our CSV: a header row and one row per setting of ``[N, P]``."""
    return csv_text(settings_NxP, names=names, layout=layout)


def to_apo(settings_NxP, names, layout: EQLayout, preamp: bool) -> str:
    """Equalizer APO / AutoEQ text for ``[1, P]``: ``# name``, ``Preamp:``, filter lines."""
    row = settings_NxP[0]
    preamp_lines = [f"Preamp: {preamp_db(row, layout):.2f} dB"] if preamp else []
    lines = [formats.comment_line(names[0]), *preamp_lines]
    return "\n".join(lines + formats.filter_lines(setting_filters(row, layout))) + "\n"


def to_rew(settings_NxP, names, layout: EQLayout, preamp: bool) -> str:
    """REW filter-settings text for ``[1, P]``: REW's header, ``Preamp:``, filter lines."""
    row = settings_NxP[0]
    preamp_lines = [f"Preamp: {preamp_db(row, layout):.2f} dB"] if preamp else []
    lines = formats.rew_header_lines(names[0]) + preamp_lines
    return "\n".join(lines + formats.filter_lines(setting_filters(row, layout))) + "\n"


def to_easyeffects(settings_NxP, names, layout: EQLayout, preamp: bool) -> str:
    """An EasyEffects output preset (JSON) for ``[1, P]``; it has no name."""
    row = settings_NxP[0]  # the preamp is the equalizer's input gain
    document = formats.easyeffects_document(setting_filters(row, layout), preamp_db(row, layout))
    return json.dumps(document, indent=4) + "\n"
