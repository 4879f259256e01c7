"""The JSON API's handlers: each takes ``(service, body, query)`` and returns a JSON-able dict
or a Response; :data:`ROUTES` maps them to their paths and methods."""

from __future__ import annotations

import numpy as np
from starlette.responses import Response

from neuraleq_jax import checks, presets
from neuraleq_jax.audio import filtering
from neuraleq_jax.model import paramspace
from neuraleq_jax.server import inputs
from neuraleq_jax.server.inputs import LIMITS, SAMPLE_RATE_RANGE, ApiError
from neuraleq_jax.server.service import Service

ENDPOINTS = {
    "GET /api": "this list",
    "GET /api/vocabulary": "the words, with sources/agreement/confidence where the model has them",
    "GET /api/word?word=W": "one word's details: sources, agreement, confidence",
    "GET /api/map": "the 2-D word map: words, xy [W, 2], confidence",
    "POST /api/generate": "{term, variations=1, strength=1 (0-4), seed=0, centre=false, "
    "include=[]} → settings, clipped_bands, notes",
    "POST /api/morph": "{from, to, steps=33, strength=1 (0-4), include=[]} → settings from one "
    "word's centre to the other's, clipped_bands, notes",
    "POST /api/explore": "{n=8, novel=false, seed=0, include=[]} → new settings",
    "POST /api/describe": "{setting [15] | settings [[15]], k=5} → nearest words",
    "POST /api/response": "{setting | settings, points=256, low_hz=20, high_hz=20000, "
    "sample_rate=48000} → dB response, per band too",
    "POST /api/coefficients": "{setting, sample_rate=48000} → RBJ biquads b, a per band",
    "GET /api/presets/formats": "the preset formats",
    "POST /api/presets/export": "{settings | setting, format, names} → the preset file",
    "POST /api/presets/import": "{text, format=null, fit=false} → settings, names, notes",
}


def _output(service: Service, settings_NxP: np.ndarray, body: dict, **extra) -> dict:
    sample_rate = inputs.number(body, "sample_rate", 48_000.0, *SAMPLE_RATE_RANGE)
    out = {
        "parameter_names": list(service.layout.param_names),
        "settings": np.asarray(settings_NxP, np.float64).tolist(),
        **extra,
    }
    out.update(service.extras(settings_NxP, inputs.include(body), sample_rate))
    return out


def api_index(service, body, query):
    return {
        "endpoints": ENDPOINTS,
        "limits": LIMITS,
        "preset_formats": list(presets.FORMATS),
        "layout": paramspace.layout_to_json(service.layout),
        "parameter_names": list(service.layout.param_names),
    }


def api_vocabulary(service, body, query):
    return service.vocabulary()


def api_word(service, body, query):
    word = query.get("word")
    if not word:
        raise ApiError(400, "give the word as ?word=...")
    return service.word(word)


def api_map(service, body, query):
    return service.word_map()


def _clipping(settings_NxP, strength: float, layout) -> dict:
    """``clipped_bands`` and ``notes``: the bands whose gain ``strength`` clipped, and the note
    that ``neuraleq generate`` and ``apply`` print for them."""
    bands = paramspace.strength_clipped_bands(settings_NxP, strength, layout)
    note = paramspace.strength_clipping_note(bands, strength, layout)
    return {"clipped_bands": list(bands), "notes": [note] if note else []}


def api_generate(service, body, query):
    inputs.check_keys(
        body, ("term", "variations", "strength", "seed", "centre", "include", "sample_rate")
    )
    term = inputs.term(body, "term")
    variations, centre = inputs.word_choice(body)
    strength = inputs.strength(body)
    settings = service.generate(
        term,
        variations,
        strength,
        inputs.integer(body, "seed", 0, 0, checks.SEED_LIMIT - 1),
        centre,
    )
    return _output(
        service, settings, body, term=term, **_clipping(settings, strength, service.layout)
    )


def api_morph(service, body, query):
    inputs.check_keys(body, ("from", "to", "steps", "strength", "include", "sample_rate"))
    strength = inputs.strength(body)
    settings = service.morph(
        inputs.term(body, "from"),
        inputs.term(body, "to"),
        inputs.integer(body, "steps", 33, 2, LIMITS["steps"]),
    )
    if strength != 1.0:
        settings = filtering.scale_strength(settings, strength, service.layout)
    return _output(service, settings, body, **_clipping(settings, strength, service.layout))


def api_explore(service, body, query):
    inputs.check_keys(body, ("n", "novel", "seed", "include", "sample_rate"))
    settings, novelty = service.explore(
        inputs.integer(body, "n", 8, 1, LIMITS["explore"]),
        inputs.boolean(body, "novel", False),
        inputs.integer(body, "seed", 0, 0, checks.SEED_LIMIT - 1),
    )
    return _output(service, settings, body, **({"novelty_db": novelty} if novelty else {}))


def api_describe(service, body, query):
    inputs.check_keys(body, ("setting", "settings", "k"))
    settings = inputs.settings(body, service.layout)
    return service.describe(settings, inputs.integer(body, "k", 5, 1, LIMITS["k"]))


def api_response(service, body, query):
    inputs.check_keys(body, ("setting", "settings", "points", "low_hz", "high_hz", "sample_rate"))
    settings = inputs.settings(body, service.layout)
    sample_rate = inputs.number(body, "sample_rate", 48_000.0, *SAMPLE_RATE_RANGE)
    low = inputs.number(body, "low_hz", 20.0, 1.0, sample_rate / 2)
    high = inputs.number(body, "high_hz", 20_000.0, low, sample_rate / 2)
    nyquist_ok = settings[:, list(service.layout.freq_indices)] < sample_rate / 2
    if not nyquist_ok.all() or high >= sample_rate / 2:
        raise ApiError(
            400,
            f"band frequencies and high_hz must lie below Nyquist "
            f"({sample_rate / 2:g} Hz at sample_rate {sample_rate:g})",
        )
    freqs = np.geomspace(low, high, inputs.integer(body, "points", 256, 2, LIMITS["points"]))
    bands = service.responses(settings, freqs, sample_rate)
    return {
        "freqs_hz": freqs.tolist(),
        "response_db": bands.sum(axis=1).tolist(),
        "bands_db": bands.tolist(),
        "loudness_gain_db": service.loudness_gain_db(settings, sample_rate).tolist(),
    }


def api_coefficients(service, body, query):
    inputs.check_keys(body, ("setting", "sample_rate"))
    setting = inputs.settings(body, service.layout, single=True)[0]
    return service.coefficients(
        setting, inputs.number(body, "sample_rate", 48_000.0, *SAMPLE_RATE_RANGE)
    )


def api_formats(service, body, query):
    return {
        "formats": [
            {
                "name": f,
                "suffix": presets.FILE_SUFFIXES[f],
                "one_setting": f in presets.ONE_SETTING_FORMATS,
            }
            for f in presets.FORMATS
        ]
    }


def api_export(service, body, query):
    inputs.check_keys(body, ("setting", "settings", "format", "names"))
    fmt = body.get("format")
    if fmt not in presets.FORMATS:
        raise ApiError(400, f"format must be one of {list(presets.FORMATS)}, got {fmt!r}")
    names = body.get("names")
    if names is not None and not (
        isinstance(names, str)
        or (isinstance(names, list) and all(isinstance(n, str) and len(n) <= 200 for n in names))
    ):
        raise ApiError(400, "names must be a string or a list of strings")
    text = presets.preset_text(
        inputs.settings(body, service.layout), fmt, names=names, layout=service.layout
    )
    filename = (
        f"neuraleq-preset{'-easyeffects' if fmt == 'easyeffects' else ''}"
        f"{presets.FILE_SUFFIXES[fmt]}"
    )
    return Response(
        text,
        media_type=presets.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def api_import(service, body, query):
    inputs.check_keys(body, ("text", "format", "fit"))
    text, fmt = body.get("text"), body.get("format")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "text must be the preset file's content (a non-empty string)")
    if fmt is not None and fmt not in presets.FORMATS:
        raise ApiError(400, f"format must be null (detect) or one of {list(presets.FORMATS)}")
    found = presets.parse_preset_text(
        text, fmt, layout=service.layout, fit=inputs.boolean(body, "fit", False)
    )
    return {
        "format": found.format,
        "names": found.names,
        "notes": found.notes,
        "preamp_db": found.preamp_db,
        "fit_rms_db": found.fit_rms_db,
        "parameter_names": list(service.layout.param_names),
        "settings": found.settings.astype(np.float64).tolist(),
    }


ROUTES = (
    (api_index, "", "GET"),
    (api_vocabulary, "/vocabulary", "GET"),
    (api_word, "/word", "GET"),
    (api_map, "/map", "GET"),
    (api_generate, "/generate", "POST"),
    (api_morph, "/morph", "POST"),
    (api_explore, "/explore", "POST"),
    (api_describe, "/describe", "POST"),
    (api_response, "/response", "POST"),
    (api_coefficients, "/coefficients", "POST"),
    (api_formats, "/presets/formats", "GET"),
    (api_export, "/presets/export", "POST"),
    (api_import, "/presets/import", "POST"),
)
