"""The numbers the web app serves, over the trained model; nothing here knows of HTTP."""

from __future__ import annotations

import functools
import threading

import jax
import numpy as np

from neuraleq_jax import generation
from neuraleq_jax.audio import filtering
from neuraleq_jax.model import paramspace, response
from neuraleq_jax.server.inputs import ApiError


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
                return filtering.scale_strength(setting, strength, self.layout)[None]
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
        used, clamped = filtering.clamp_band_frequencies(setting_P, sample_rate, self.layout)
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
    _, h = signal.sosfreqz(filtering.k_weighting_sos(sample_rate), worN=grid, fs=sample_rate)
    weights = np.abs(h) ** 2
    return weights / weights.sum()
