"""The numbers the web app serves, over a system that offers :class:`ServedSystem`; nothing
here knows of HTTP."""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import Protocol

import jax
import numpy as np

from neuraleq_jax import generation
from neuraleq_jax.audio import filtering
from neuraleq_jax.model import paramspace, response
from neuraleq_jax.model.paramspace import EQLayout
from neuraleq_jax.server.inputs import ApiError


class ServedSystem(Protocol):
    """What the web server needs of a system: the neural facade
    (:class:`~neuraleq_jax.system.NeuralEQMorphingSystem`) and the lite baseline
    (:class:`~neuraleq_jax.evaluation.baseline.LiteBaseline`) both offer all of it, trained or
    fitted. ``P`` is ``layout.n_params``; settings are physical (dB, Hz, Q), float32.

    - ``layout``: the EQ layout every setting is in.
    - ``vocabulary``: the ``W`` known words, in the order of every per-word array.
    - ``generate_eq_from_semantic(term, variations=V, strength=s, seed=k, as_array=True)``:
      ``[V, P]`` settings for ``term``, gains scaled by ``s`` toward 0 dB.
    - ``morph_between_terms(term1, term2, steps=S, as_array=True)``: ``[S, P]``, from ``term1``'s
      centre setting to ``term2``'s, both included (``S = 2``, one term twice: its centre).
    - ``explore_latent_space(n_samples=N, novel=None | True, seed=k)``: ``N`` named dicts (one
      entry per parameter); with ``novel`` the most novel first, each with ``novelty_db``, the
      RMS dB (reference grid) from its response to the nearest training setting's.
    - ``word_info(word)``: ``{"word", "sources", "contributors", "agreement", "confidence",
      "lang"}`` (:func:`neuraleq_jax.data.vocabulary.word_info`).
    - ``word_map()``: ``[W, 2]`` word positions about RMS dB apart, in vocabulary order.
    - ``describe(settings_NxP, k=K)``: for each of ``N`` settings, its ``K`` nearest words as
      ``(word, distance_db)``, nearest first.

    Terms a system cannot read (the baseline reads single words only) raise ValueError or
    TypeError with a one-line message, which the server answers with 400.
    """

    layout: EQLayout

    @property
    def vocabulary(self) -> Sequence[str]: ...

    def generate_eq_from_semantic(
        self, term, variations: int, *, strength: float, seed: int | None, as_array: bool
    ): ...

    def morph_between_terms(self, term1, term2, steps: int, *, as_array: bool): ...

    def explore_latent_space(self, n_samples: int, *, novel, seed: int | None) -> list[dict]: ...

    def word_info(self, word: str) -> dict: ...

    def word_map(self) -> np.ndarray: ...

    def describe(self, settings, k: int) -> list: ...


SERVED_MEMBERS = tuple(
    sorted(
        {*ServedSystem.__annotations__, *(n for n in vars(ServedSystem) if not n.startswith("_"))}
    )
)


def missing_members(system) -> list[str]:
    """The members of :class:`ServedSystem` that ``system`` lacks (none for the facade or the
    baseline). Read from its class and its own attributes, so no property runs."""
    own = getattr(system, "__dict__", {})
    return [name for name in SERVED_MEMBERS if name not in own and not hasattr(type(system), name)]


@functools.partial(jax.jit, static_argnames=("layout",))
def _responses_db(settings_NxP, freqs_F, sample_rate, layout):
    return response.band_responses_db(settings_NxP, freqs_F, sample_rate, layout)


class Service:
    """The model and the numbers the API serves; knows nothing of HTTP."""

    def __init__(self, system: ServedSystem):
        missing = missing_members(system)
        if missing:
            raise TypeError(
                f"the web server needs a system offering {', '.join(SERVED_MEMBERS)}; "
                f"{type(system).__name__} lacks {', '.join(missing)}"
            )
        self.system = system
        self.layout = system.layout
        self.lock = threading.Lock()

    def vocabulary(self) -> dict:
        # every served system has word details, a map and describe; the flags stay for clients
        # that read them
        return {
            "words": [self._info(word) for word in self.system.vocabulary],
            "details": True,
            "has_map": True,
            "has_describe": True,
        }

    def _info(self, word: str) -> dict:
        details = dict(self.system.word_info(word))
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
        xy = np.asarray(self.system.word_map(), np.float64)
        words = list(self.system.vocabulary)
        confidence = [self._info(w).get("confidence") for w in words]
        return {"words": words, "xy": xy.tolist(), "confidence": confidence}

    def describe(self, settings_NxP: np.ndarray, k: int) -> dict:
        nearest = self.system.describe(settings_NxP, k=k)
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
