"""The local web app: one page and a JSON API over :class:`NeuralEQMorphingSystem`.

    neuraleq serve --workdir runs/synthetic        # then open http://127.0.0.1:8000/

Starlette on uvicorn; the page's HTML/JS/CSS live in ``neuraleq_jax/web`` and need no network.
``GET /api`` lists the endpoints (:data:`ENDPOINTS`). Request bodies are JSON objects; every
bad input answers 4xx with ``{"error": "<what was wrong and what is accepted>"}``; sizes are
bounded by :data:`LIMITS`. The model is shared by all requests, so calls into it hold one
lock (its compile caches and call counter are not thread-safe); a generate call takes about a
millisecond, so serialising them costs little.
"""

from __future__ import annotations

import functools
import json
import math
import threading
from pathlib import Path

import jax
import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from neuraleq_jax import audio, checks, generation, paramspace, presets, response

WEB_DIR = Path(__file__).resolve().parent / "web"
LIMITS = {
    "body_bytes": 1 << 20,
    "variations": 256,
    "steps": 129,
    "explore": 64,
    "settings": 256,
    "points": 2048,
    "k": 20,
    "term_chars": 200,
}
SAMPLE_RATE_RANGE = (8_000.0, 192_000.0)
INCLUDES = ("response", "coefficients")
ENDPOINTS = {
    "GET /api": "this list",
    "GET /api/vocabulary": "the words, with sources/agreement/confidence where the model has them",
    "GET /api/word?word=W": "one word's details (501 where the model has no word_info)",
    "GET /api/map": "the 2-D word map: words, xy [W, 2], confidence (501 without word_map)",
    "POST /api/generate": "{term, variations=1, strength=1, seed=0, centre=false, include=[]}",
    "POST /api/morph": "{from, to, steps=33, include=[]} → settings from one word to the other",
    "POST /api/explore": "{n=8, novel=false, seed=0, include=[]} → new settings",
    "POST /api/describe": "{setting [15] | settings [[15]], k=5} → nearest words (501 without)",
    "POST /api/response": "{setting | settings, points=256, low_hz=20, high_hz=20000, "
    "sample_rate=48000} → dB response, per band too",
    "POST /api/coefficients": "{setting, sample_rate=48000} → RBJ biquads b, a per band",
    "GET /api/presets/formats": "the preset formats",
    "POST /api/presets/export": "{settings | setting, format, names} → the preset file",
    "POST /api/presets/import": "{text, format=null, fit=false} → settings, names, notes",
}


class ApiError(Exception):
    """Bad input: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- reading request bodies


def _check_keys(body: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, f"unknown field(s) {unknown}; accepted: {list(allowed)}")


def _int(body: dict, name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _float(body: dict, name: str, default: float, low: float, high: float) -> float:
    value = body.get(name, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and low <= value <= high)
    ):
        raise ApiError(400, f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _bool(body: dict, name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false, got {value!r}")
    return value


def _term(body: dict, name: str):
    """A word, a compound string, or ``{word: weight}``."""
    value = body.get(name)
    if isinstance(value, str) and 0 < len(value) <= LIMITS["term_chars"]:
        return value
    if (
        isinstance(value, dict)
        and 0 < len(value) <= 64
        and all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            for k, v in value.items()
        )
    ):
        return value
    raise ApiError(
        400,
        f"{name} must be a word or description such as 'warm' or "
        f"'0.7 warm + 0.3 bright' (1-{LIMITS['term_chars']} characters), or "
        f"an object {{word: weight}}; got {str(value)[:80]!r}",
    )


def _settings(body: dict, layout, *, single: bool = False) -> np.ndarray:
    """``setting`` ([15] or a named dict) or ``settings`` (a list of them) → ``[N, 15]``."""
    if ("setting" in body) == ("settings" in body):
        raise ApiError(
            400,
            "give exactly one of 'setting' (15 numbers or a dict band1_gain "
            "... band5_q) or 'settings' (a list of them)",
        )
    value = [body["setting"]] if "setting" in body else body["settings"]
    if not isinstance(value, list) or not value:
        raise ApiError(400, "settings must be a non-empty list")
    if len(value) > (1 if single else LIMITS["settings"]):
        raise ApiError(
            413 if not single else 400,
            f"at most {1 if single else LIMITS['settings']}"
            f" setting(s) per request, got {len(value)}",
        )
    try:
        if all(isinstance(row, dict) for row in value):
            return paramspace.from_dicts(value, layout)
        if not all(
            isinstance(row, list)
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in row)
            for row in value
        ):
            raise ValueError(
                f"each setting must be a list of {layout.n_params} numbers "
                f"({', '.join(layout.param_names[:3])}, ...) or a named dict"
            )
        return paramspace.validate(np.array(value, np.float64), layout, name="setting")
    except ValueError as error:
        raise ApiError(400, str(error)) from None


def _include(body: dict) -> tuple[str, ...]:
    value = body.get("include", [])
    if not isinstance(value, list) or not set(value) <= set(INCLUDES):
        raise ApiError(400, f"include must be a list drawn from {list(INCLUDES)}, got {value!r}")
    return tuple(value)


# ---------------------------------------------------------------- the numeric service


@functools.partial(jax.jit, static_argnames=("layout",))
def _responses_db(settings_NxP, freqs_F, sample_rate, layout):
    return response.band_responses_db(settings_NxP, freqs_F, sample_rate, layout)


class Service:
    """The model and the numbers the API serves; knows nothing of HTTP."""

    def __init__(self, system):
        self.system = system
        self.layout = system.layout
        self.lock = threading.Lock()

    def _require(self, name: str):
        method = getattr(self.system, name, None)
        if method is None:
            raise ApiError(
                501,
                f"this model has no {name}() (it needs a newer neuraleq_jax); "
                f"the rest of the API works",
            )
        return method

    def vocabulary(self) -> dict:
        info = getattr(self.system, "word_info", None)
        words = [
            self._info(word) if info else {"word": word, "confidence": None}
            for word in self.system.vocabulary
        ]
        return {
            "words": words,
            "details": info is not None,
            "has_map": getattr(self.system, "word_map", None) is not None,
            "has_describe": getattr(self.system, "describe", None) is not None,
        }

    def _info(self, word: str) -> dict:
        details = dict(self._require("word_info")(word))
        return {
            key: (list(value) if isinstance(value, tuple) else value)
            for key, value in details.items()
        }

    def word(self, word: str) -> dict:
        if word not in self.system.vocabulary:
            raise ApiError(
                404,
                f"unknown word {word!r}; GET /api/vocabulary lists the "
                f"{len(self.system.vocabulary)} known words",
            )
        return self._info(word)

    def word_map(self) -> dict:
        xy = np.asarray(self._require("word_map")(), np.float64)
        words = list(self.system.vocabulary)
        info = getattr(self.system, "word_info", None)
        confidence = [self._info(w).get("confidence") if info else None for w in words]
        return {"words": words, "xy": xy.tolist(), "confidence": confidence}

    def describe(self, settings_NxP: np.ndarray, k: int) -> dict:
        nearest = self._require("describe")(settings_NxP, k=k)
        return {
            "nearest": [[{"word": w, "distance_db": float(d)} for w, d in row] for row in nearest]
        }

    def generate(
        self, term, variations: int, strength: float, seed: int, centre: bool
    ) -> np.ndarray:
        with self.lock:
            if centre:
                setting = np.asarray(
                    self.system.morph_between_terms(term, term, steps=2, as_array=True)
                )[0]
                return audio.scale_strength(setting, strength, self.layout)[None]
            return np.asarray(
                self.system.generate_eq_from_semantic(
                    term, variations=variations, strength=strength, seed=seed, as_array=True
                )
            )

    def morph(self, term_a, term_b, steps: int) -> np.ndarray:
        with self.lock:
            return np.asarray(
                self.system.morph_between_terms(term_a, term_b, steps=steps, as_array=True)
            )

    def explore(self, n: int, novel: bool, seed: int) -> tuple[np.ndarray, list | None]:
        with self.lock:
            rows = self.system.explore_latent_space(n_samples=n, novel=novel or None, seed=seed)
        settings = paramspace.from_dicts(rows, self.layout)
        return settings, [row["novelty_db"] for row in rows] if novel else None

    def responses(self, settings_NxP, freqs_F, sample_rate: float) -> np.ndarray:
        """Per-band dB responses ``[N, bands, F]`` (padded to power-of-two buckets)."""
        n, f = len(settings_NxP), len(freqs_F)
        rows, points = generation.bucket_size(n), generation.bucket_size(f)
        padded = np.concatenate(
            [settings_NxP, np.repeat(paramspace.flat_setting(self.layout)[None], rows - n, axis=0)]
        ).astype(np.float32)
        grid = np.concatenate([freqs_F, np.full(points - f, freqs_F[-1])]).astype(np.float32)
        bands = _responses_db(padded, grid, np.float32(sample_rate), self.layout)
        return np.asarray(bands)[:n, :, :f]

    def loudness_gain_db(
        self, settings_NxP, sample_rate: float, reference_db_NxF=None
    ) -> np.ndarray:
        """Gain ``[N]`` (dB) that levels each setting with bypass for K-weighted pink noise:
        minus the setting's mean power gain over a log-frequency grid weighted by BS.1770's
        K filter (pink noise has equal power per octave), i.e. its loudness change in LU.
        ``reference_db_NxF``: the responses on the reference grid at this rate, if known."""
        grid = response.REFERENCE_FREQS.astype(np.float64)
        grid = grid[grid < 0.45 * sample_rate]
        weights = _k_weights(float(sample_rate), grid.tobytes())
        if reference_db_NxF is None or len(grid) != reference_db_NxF.shape[-1]:
            reference_db_NxF = self.responses(settings_NxP, grid, sample_rate).sum(axis=1)
        return -10.0 * np.log10(10.0 ** (np.asarray(reference_db_NxF) / 10.0) @ weights)

    def coefficients(self, setting_P: np.ndarray, sample_rate: float) -> dict:
        used, clamped = audio.clamp_band_frequencies(setting_P, sample_rate, self.layout)
        sos = response.second_order_sections(used, sample_rate, self.layout)
        bands = [
            {"band": i + 1, "type": kind, "b": row[:3].tolist(), "a": row[3:].tolist()}
            for i, (kind, row) in enumerate(zip(self.layout.kinds, sos))
        ]
        return {
            "sample_rate": sample_rate,
            "bands": bands,
            "clamped_bands": [c.band for c in clamped],
        }

    def extras(self, settings_NxP, include, sample_rate: float) -> dict:
        out = {}
        if "response" in include:
            freqs = response.REFERENCE_FREQS
            out["freqs_hz"] = freqs.tolist()
            curves = self.responses(settings_NxP, freqs, response.DEFAULT_SAMPLE_RATE).sum(1)
            same_rate = sample_rate == response.DEFAULT_SAMPLE_RATE
            out["response_db"] = curves.tolist()
            out["loudness_gain_db"] = self.loudness_gain_db(
                settings_NxP, sample_rate, curves if same_rate else None
            ).tolist()
        if "coefficients" in include:
            out["coefficients"] = [self.coefficients(row, sample_rate) for row in settings_NxP]
        return out


@functools.lru_cache(maxsize=16)
def _k_weights(sample_rate: float, grid_bytes: bytes) -> np.ndarray:
    from scipy import signal

    grid = np.frombuffer(grid_bytes, np.float64)
    _, h = signal.sosfreqz(audio.k_weighting_sos(sample_rate), worN=grid, fs=sample_rate)
    weights = np.abs(h) ** 2
    return weights / weights.sum()


# ---------------------------------------------------------------- endpoints


def _output(service: Service, settings_NxP: np.ndarray, body: dict, **extra) -> dict:
    sample_rate = _float(body, "sample_rate", 48_000.0, *SAMPLE_RATE_RANGE)
    out = {
        "parameter_names": list(service.layout.param_names),
        "settings": np.asarray(settings_NxP, np.float64).tolist(),
        **extra,
    }
    out.update(service.extras(settings_NxP, _include(body), sample_rate))
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


def api_generate(service, body, query):
    _check_keys(
        body, ("term", "variations", "strength", "seed", "centre", "include", "sample_rate")
    )
    term = _term(body, "term")
    settings = service.generate(
        term,
        _int(body, "variations", 1, 1, LIMITS["variations"]),
        _float(body, "strength", 1.0, 0.0, 4.0),
        _int(body, "seed", 0, 0, checks.SEED_LIMIT - 1),
        _bool(body, "centre", False),
    )
    return _output(service, settings, body, term=term)


def api_morph(service, body, query):
    _check_keys(body, ("from", "to", "steps", "include", "sample_rate"))
    settings = service.morph(
        _term(body, "from"), _term(body, "to"), _int(body, "steps", 33, 2, LIMITS["steps"])
    )
    return _output(service, settings, body)


def api_explore(service, body, query):
    _check_keys(body, ("n", "novel", "seed", "include", "sample_rate"))
    settings, novelty = service.explore(
        _int(body, "n", 8, 1, LIMITS["explore"]),
        _bool(body, "novel", False),
        _int(body, "seed", 0, 0, checks.SEED_LIMIT - 1),
    )
    return _output(service, settings, body, **({"novelty_db": novelty} if novelty else {}))


def api_describe(service, body, query):
    _check_keys(body, ("setting", "settings", "k"))
    settings = _settings(body, service.layout)
    return service.describe(settings, _int(body, "k", 5, 1, LIMITS["k"]))


def api_response(service, body, query):
    _check_keys(body, ("setting", "settings", "points", "low_hz", "high_hz", "sample_rate"))
    settings = _settings(body, service.layout)
    sample_rate = _float(body, "sample_rate", 48_000.0, *SAMPLE_RATE_RANGE)
    low = _float(body, "low_hz", 20.0, 1.0, sample_rate / 2)
    high = _float(body, "high_hz", 20_000.0, low, sample_rate / 2)
    nyquist_ok = settings[:, list(service.layout.freq_indices)] < sample_rate / 2
    if not nyquist_ok.all() or high >= sample_rate / 2:
        raise ApiError(
            400,
            f"band frequencies and high_hz must lie below Nyquist "
            f"({sample_rate / 2:g} Hz at sample_rate {sample_rate:g})",
        )
    freqs = np.geomspace(low, high, _int(body, "points", 256, 2, LIMITS["points"]))
    bands = service.responses(settings, freqs, sample_rate)
    return {
        "freqs_hz": freqs.tolist(),
        "response_db": bands.sum(axis=1).tolist(),
        "bands_db": bands.tolist(),
        "loudness_gain_db": service.loudness_gain_db(settings, sample_rate).tolist(),
    }


def api_coefficients(service, body, query):
    _check_keys(body, ("setting", "sample_rate"))
    setting = _settings(body, service.layout, single=True)[0]
    return service.coefficients(setting, _float(body, "sample_rate", 48_000.0, *SAMPLE_RATE_RANGE))


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
    _check_keys(body, ("setting", "settings", "format", "names"))
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
        _settings(body, service.layout), fmt, names=names, layout=service.layout
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
    _check_keys(body, ("text", "format", "fit"))
    text, fmt = body.get("text"), body.get("format")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "text must be the preset file's content (a non-empty string)")
    if fmt is not None and fmt not in presets.FORMATS:
        raise ApiError(400, f"format must be null (detect) or one of {list(presets.FORMATS)}")
    found = presets.parse_preset_text(
        text, fmt, layout=service.layout, fit=_bool(body, "fit", False)
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


async def _read_json(request: Request) -> dict:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > LIMITS["body_bytes"]:
        raise ApiError(413, f"request body over {LIMITS['body_bytes']} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > LIMITS["body_bytes"]:
            raise ApiError(413, f"request body over {LIMITS['body_bytes']} bytes")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks) or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, f"the body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _endpoint(handler, path: str, method: str):
    async def endpoint(request: Request):
        try:
            body = await _read_json(request) if method == "POST" else {}
            result = await run_in_threadpool(
                handler, request.app.state.service, body, request.query_params
            )
        except ApiError as error:
            return JSONResponse({"error": str(error)}, status_code=error.status)
        except (ValueError, TypeError) as error:  # the library's own bad-input messages
            return JSONResponse({"error": str(error)}, status_code=400)
        return result if isinstance(result, Response) else JSONResponse(result)

    return Route(f"/api{path}", endpoint, methods=[method])


_ROUTES = (
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


async def _http_error(request: Request, error: HTTPException):
    message = {
        404: f"no such page or endpoint {request.url.path}; GET /api lists them",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(error.status_code, str(error.detail))
    return JSONResponse({"error": message}, status_code=error.status_code)


async def _index(request: Request):
    return FileResponse(WEB_DIR / "index.html", media_type="text/html")


def create_app(system, *, allowed_hosts: list[str] | None = None) -> Starlette:
    """The ASGI app serving ``system`` (a trained :class:`NeuralEQMorphingSystem`).

    ``allowed_hosts`` (e.g. ``["127.0.0.1", "localhost"]``) rejects requests naming another
    Host, which keeps web pages elsewhere from reaching a local server by DNS rebinding.
    """
    routes = [_endpoint(handler, path, method) for handler, path, method in _ROUTES]
    routes += [
        Route("/", _index, methods=["GET"]),
        Mount("/static", StaticFiles(directory=WEB_DIR), name="static"),
    ]
    middleware = []
    if allowed_hosts:
        from starlette.middleware import Middleware
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    app = Starlette(
        routes=routes, middleware=middleware, exception_handlers={HTTPException: _http_error}
    )
    app.state.service = Service(system)
    return app


def warm_up(service: Service) -> None:
    """Compile the executables the page uses first, so its first request is fast."""
    word = service.system.vocabulary[0]
    settings = service.generate(word, 1, 1.0, 0, centre=False)
    service.generate(word, 1, 1.0, 0, centre=True)
    service.extras(settings, INCLUDES, 48_000.0)


def serve(system, host: str = "127.0.0.1", port: int = 8000) -> int:
    """Run the app on uvicorn until interrupted (blocking)."""
    import uvicorn

    loopback = host in ("127.0.0.1", "localhost", "::1")
    app = create_app(
        system, allowed_hosts=["127.0.0.1", "localhost", "[::1]"] if loopback else None
    )
    warm_up(app.state.service)
    print(
        f"neuraleq: serving {len(system.vocabulary)} words on http://{host}:{port}/ (Ctrl+C stops)",
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
