"""Audealize's word curves (``eqdescriptors.json``): reader, crowd spread rule, training data.

Audealize (Seetharaman and Pardo, "Audealize: Crowdsourced Audio Production Tools", JAES 2016),
built on SocialEQ (Cartwright and Pardo, "Social-EQ: Crowdsourcing an Equalization Descriptor
Map", ISMIR 2013), describes each word by a 40-band graphic-EQ curve. Its file is a UTF-8 JSON
list of entries ``{"word", "lang", "settings" (40 dB gains at the plug-in's full amount),
"agreement", "num" (contributors), "x", "y" (position on Audealize's word map)}``. The band
centres are :data:`AUDEALIZE_FREQS` (the plug-in's own, not evenly log-spaced).

:func:`load_any_curve_file` reads a curve file of either kind (this one or
:mod:`neuraleq_jax.data.curves`' own), for callers that take both.

The file is GPL-2.0 upstream and never ships with this package: the user gives its path or
downloads it (:mod:`neuraleq_jax.data.fetch`).

Training data. Each curve is fitted once with the batched JAX fit (:func:`curves.fit_curves`),
then each word gets ``per_word`` *variations*: settings around the fit whose responses spread
like the crowd's uncertainty about the curve (:func:`spread_db`), so a word's latent cloud is
narrow where many contributors agreed and wide where two disagreed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from neuraleq_jax import checks
from neuraleq_jax.data import curves
from neuraleq_jax.data.vocabulary import word_index
from neuraleq_jax.model import paramspace, response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout

# The plug-in's band centres in Hz (AudealizeEQAudioProcessor.h, mFreqs), float32 [40].
AUDEALIZE_FREQS = np.array(
    [
        20,
        50,
        83,
        120,
        161,
        208,
        259,
        318,
        383,
        455,
        537,
        628,
        729,
        843,
        971,
        1114,
        1273,
        1452,
        1652,
        1875,
        2126,
        2406,
        2719,
        3070,
        3462,
        3901,
        4392,
        4941,
        5556,
        6244,
        7014,
        7875,
        8839,
        9917,
        11124,
        12474,
        13984,
        15675,
        17566,
        19682,
    ],
    dtype=np.float32,
)
FIELDS = ("word", "lang", "settings", "agreement", "num", "x", "y")


@dataclasses.dataclass(frozen=True)
class AudealizeSet:
    """Entries read from an Audealize file (``N`` kept entries).

    Attributes:
      words: ``N`` words, trimmed and lower-cased (accents kept, Unicode NFC as in the file).
      langs: ``N`` languages as the file names them (``"English"``, ``"Español"``).
      gains_db: float32 ``[N, 40]`` dB at :data:`AUDEALIZE_FREQS` (plug-in full amount).
      agreement: float32 ``[N]`` contributors' agreement (higher = more consistent).
      counts: int64 ``[N]`` contributors (``num``).
      map_xy: float32 ``[N, 2]`` position on Audealize's word map.
      skipped: ``(entry index, reason)`` of malformed entries that were skipped.
    """

    words: tuple[str, ...]
    langs: tuple[str, ...]
    gains_db: np.ndarray
    agreement: np.ndarray
    counts: np.ndarray
    map_xy: np.ndarray
    skipped: tuple[tuple[int, str], ...] = ()

    def __len__(self) -> int:
        return len(self.words)

    @property
    def freqs(self) -> np.ndarray:
        return AUDEALIZE_FREQS

    def subset(self, words: Sequence[str]) -> AudealizeSet:
        """The entries of ``words`` in the given order (each must be in the file: an unknown
        word is a one-line error with close spellings)."""
        rows = [word_index(word, self.words) for word in words]
        return dataclasses.replace(
            self,
            words=tuple(self.words[i] for i in rows),
            langs=tuple(self.langs[i] for i in rows),
            gains_db=self.gains_db[rows],
            agreement=self.agreement[rows],
            counts=self.counts[rows],
            map_xy=self.map_xy[rows],
        )

    def as_curves(self) -> curves.CurveSet:
        """The same curves as a :class:`curves.CurveSet` (drops language and map)."""
        return curves.CurveSet(
            words=self.words,
            gains_db=self.gains_db,
            freqs=AUDEALIZE_FREQS,
            agreement=self.agreement,
            counts=self.counts,
        )


def _number(entry: dict, name: str) -> float:
    value = entry.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"'{name}' is {value!r}; it must be a finite number")
    return float(value)


def _parse_entry(entry) -> tuple:
    """``(word, lang, gains, agreement, num, x, y)`` of one entry; ValueError says what is wrong."""
    if not isinstance(entry, dict):
        raise ValueError(f"must be an object with {', '.join(FIELDS)}, got {type(entry).__name__}")
    word, lang = entry.get("word"), entry.get("lang")
    if not isinstance(word, str) or not word.strip():
        raise ValueError("'word' is missing or not a non-empty string")
    if not isinstance(lang, str) or not lang.strip():
        raise ValueError("'lang' is missing or not a non-empty string")
    gains = entry.get("settings")
    if not isinstance(gains, list) or len(gains) != len(AUDEALIZE_FREQS):
        size = len(gains) if isinstance(gains, list) else type(gains).__name__
        raise ValueError(
            f"'settings' must be a list of {len(AUDEALIZE_FREQS)} gains (dB), got {size}"
        )
    for index, value in enumerate(gains):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ValueError(f"settings[{index}] is {value!r}; gains must be finite numbers (dB)")
    num = entry.get("num")
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f"'num' is {num!r}; it must be a positive integer (contributors)")
    agreement = _number(entry, "agreement")
    return (
        word.strip().lower(),
        lang.strip(),
        [float(g) for g in gains],
        agreement,
        num,
        _number(entry, "x"),
        _number(entry, "y"),
    )


def parse_audealize(
    document, *, on_malformed: str = "raise", source: str = "audealize"
) -> AudealizeSet:
    """Validate a decoded Audealize document (a JSON list of entries) into an AudealizeSet.

    Args:
      on_malformed: ``"raise"`` (one ValueError listing every bad entry by 0-based index) or
        ``"skip"`` (drop them and list them in ``skipped``). A word given twice is malformed
        from its second entry on (a word must name one curve).
      source: a name for messages (the file path).
    """
    checks.on_malformed(on_malformed)
    if not isinstance(document, list) or not document:
        raise ValueError(
            f"{source}: expected a non-empty JSON list of entries with "
            f"{', '.join(FIELDS)} (Audealize's eqdescriptors.json format)"
        )
    parsed, skipped, seen = [], [], {}
    for index, entry in enumerate(document):
        try:
            row = _parse_entry(entry)
            if row[0] in seen:
                raise ValueError(f"word {row[0]!r} repeats entry {seen[row[0]]}")
        except ValueError as error:
            skipped.append((index, str(error)))
            continue
        seen[row[0]] = index
        parsed.append(row)
    checks.check_entries(source, parsed, skipped, on_malformed, "; on_malformed='skip' drops them")
    words, langs, gains, agreement, counts, xs, ys = zip(*parsed)
    return AudealizeSet(
        words=tuple(words),
        langs=tuple(langs),
        gains_db=np.array(gains, np.float32),
        agreement=np.array(agreement, np.float32),
        counts=np.array(counts, np.int64),
        map_xy=np.stack([xs, ys], axis=1).astype(np.float32),
        skipped=tuple(skipped),
    )


def load_audealize(path: str | os.PathLike, *, on_malformed: str = "raise") -> AudealizeSet:
    """Read Audealize's ``eqdescriptors.json`` (UTF-8); see :func:`parse_audealize`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Audealize file not found: {path} (download it with `neuraleq data fetch audealize`)"
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))  # a BOM is tolerated
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error})") from None
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}: not valid JSON ({error}); expected Audealize's list of "
            f"entries with {', '.join(FIELDS)}"
        ) from None
    return parse_audealize(document, on_malformed=on_malformed, source=str(path))


def is_audealize_document(document) -> bool:
    """Whether a decoded JSON document looks like Audealize's format (entries with 'settings'),
    rather than :mod:`neuraleq_jax.data.curves`' own (entries with 'gains_db')."""
    first = document[0] if isinstance(document, list) and document else None
    return isinstance(first, dict) and "settings" in first and "gains_db" not in first


def parse_any_curves(
    document,
    *,
    on_malformed: str = "raise",
    source: str = "curves",
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> curves.CurveSet:
    """A decoded curve document of either kind as a :class:`curves.CurveSet`: Audealize's
    (:func:`is_audealize_document`; its 40 bands, language and map dropped) by
    :func:`parse_audealize`, any other by :func:`curves.parse_curves` (``sample_rate``, in Hz,
    bounds its band frequencies)."""
    if not is_audealize_document(document):
        return curves.parse_curves(
            document, on_malformed=on_malformed, source=source, sample_rate=sample_rate
        )
    read = parse_audealize(document, on_malformed=on_malformed, source=source)
    return dataclasses.replace(read.as_curves(), skipped=read.skipped)


def load_any_curve_file(
    path: str | os.PathLike,
    *,
    on_malformed: str = "raise",
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> curves.CurveSet:
    """A curve file of either kind, Audealize's ``eqdescriptors.json`` or
    :mod:`neuraleq_jax.data.curves`' own format (see :func:`parse_any_curves`)."""
    return parse_any_curves(
        curves.read_curve_document(path),
        on_malformed=on_malformed,
        source=str(path),
        sample_rate=sample_rate,
    )


# ------------------------------------------------------------------ the crowd's uncertainty


def reliability(agreement, contributors):
    """Reliability of a crowd's mean curve, in ``(0, 1]``: the Spearman-Brown formula
    ``n ρ / (1 + (n - 1) ρ)`` with ``ρ`` = agreement (clipped to ``[0.01, 1]``, read as one
    contributor's reliability) and ``n`` contributors. ``[N]`` → ``[N]`` float64."""
    rho = np.clip(np.asarray(agreement, np.float64), 0.01, 1.0)
    n = np.maximum(np.asarray(contributors, np.float64), 1.0)
    return n * rho / (1.0 + (n - 1.0) * rho)


def spread_db(
    gains_NxF, agreement_N, contributors_N, *, scale: float = 1.0, floor: float = 0.05
) -> np.ndarray:
    """Per-word RMS spread (dB) of the variations' responses around the fitted curve, ``[N]``.

    The rule: a reliability ``R`` (:func:`reliability`) is the share of the curve's variance
    that is signal, so the noise has ``(1 - R) / R`` of its variance:
    ``spread = scale · rms(curve) · max(sqrt((1 - R) / R), floor)``. Two contributors at
    agreement 0.5 give 0.71 of the curve's RMS; warm (122 contributors, 0.81) 0.05 (the floor,
    which keeps every word a cloud for the contrastive loss).
    """
    gains = np.asarray(gains_NxF, np.float64)
    r = reliability(agreement_N, contributors_N)
    relative = np.maximum(np.sqrt((1.0 - r) / r), floor)
    return scale * np.sqrt(np.mean(gains**2, axis=1)) * relative


# unit-space step of each parameter kind per unit of spread: gains carry the curve's shape;
# frequency and Q move less, so that variations keep the fitted curve's character
_KIND_WEIGHTS = {"gain": 1.0, "freq": 0.5, "q": 0.5}


def _kind_weights(layout: EQLayout) -> np.ndarray:
    weights = np.full(layout.n_params, _KIND_WEIGHTS["q"], np.float32)
    weights[list(layout.gain_indices)] = _KIND_WEIGHTS["gain"]
    weights[list(layout.freq_indices)] = _KIND_WEIGHTS["freq"]
    return weights


@jax.jit
def _variation_rms(unit_NxP, z_NxVxP, scale_N, weights_P, freqs_F):
    """RMS dB (over variations and bands) of the variations' responses around each centre."""
    centre = paramspace.clip(paramspace.denormalize(unit_NxP))
    drawn = paramspace.clip(
        paramspace.denormalize(
            jnp.clip(unit_NxP[:, None] + scale_N[:, None, None] * z_NxVxP * weights_P, -1.0, 1.0)
        )
    )
    base_db = response.magnitude_response_db(centre, freqs_F)
    drawn_db = response.magnitude_response_db(drawn, freqs_F)
    return jnp.sqrt(jnp.mean((drawn_db - base_db[:, None]) ** 2, axis=(1, 2)))


def variations(
    settings_NxP,
    target_db_N,
    per_word: int,
    *,
    seed: int = 0,
    freqs=AUDEALIZE_FREQS,
    layout: EQLayout = DEFAULT_LAYOUT,
    rounds: int = 4,
) -> np.ndarray:
    """``per_word`` settings around each fitted setting whose responses spread by ``target_db``.

    Draws ``z`` standard normal in the unit space (gains weighted 1, frequency and Q 0.5),
    scaled per word and clipped to the range; the scale is set by ``rounds`` multiplicative
    corrections so that the RMS dB distance (over variations and ``freqs``) of the responses to
    the fitted setting's is ``target_db``. The first variation is the fitted setting itself.
    Returns float32 ``[N, per_word, P]`` physical settings, always in range.
    """
    if layout != DEFAULT_LAYOUT:
        raise ValueError("Audealize variations use the default layout (data.layout=spec)")
    settings = paramspace.validate(settings_NxP, layout, name="fitted settings")
    unit = np.asarray(paramspace.normalize(settings, layout), np.float32)
    target = np.asarray(target_db_N, np.float32)
    z = (
        np.random.default_rng(seed)
        .standard_normal((len(unit), per_word, layout.n_params))
        .astype(np.float32)
    )
    z[:, 0] = 0.0
    weights, freqs = _kind_weights(layout), np.asarray(freqs, np.float32)
    scale = np.full(len(unit), 0.1, np.float32)
    for _ in range(rounds):
        reached = np.asarray(_variation_rms(unit, z, scale, weights, freqs))
        scale = scale * np.clip(target / np.maximum(reached, 1e-6), 0.25, 4.0)
    drawn = np.clip(unit[:, None] + scale[:, None, None] * z * weights, -1.0, 1.0)
    physical = paramspace.clip(paramspace.denormalize(drawn, layout), layout)
    return np.asarray(physical, np.float32)
