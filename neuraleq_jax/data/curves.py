"""40-band crowd EQ curves (SocialEQ / Audealize style) and a batched fit of 5-band settings.

SocialEQ (Cartwright and Pardo 2013) and Audealize (Seetharaman and Pardo 2016) describe a word
by a graphic-EQ curve: a gain in dB on each of 40 fixed bands. This module loads such curves
from a user-supplied JSON file and fits a setting of our parametric layout to each one, so the
words can train the same model as SAFE-DB or the synthetic set.

File format (UTF-8 JSON), either a list of entries or an object
``{"freqs": [F band centres in Hz, optional], "entries": [...]}``; each entry is
``{"word": "warm", "gains_db": [F numbers], "agreement": 0.41, "count": 17}`` where
``agreement`` (any finite number) and ``count`` (a non-negative integer) are optional. Without
``freqs`` the bands are :data:`CURVE_FREQS`. Words are trimmed and lower-cased, not folded.
Audealize's own ``eqdescriptors.json`` (entries with ``settings``, ``num``, ``lang``, ``x``,
``y``) is :mod:`neuraleq_jax.data.audealize`'s to read; its ``load_any_curve_file`` reads a
file of either kind, for callers that accept both.

The fit optimises each setting in the parameter-space unit space ``[-1, 1]^15`` with Adam,
projecting back into the box after every step (clipping, not tanh: tanh's vanishing gradient
at the edges stalled fits whose true values lie near a range limit). The error surface has many
local minima (bells trading places with broad shelves), so each curve gets ``restarts``
independent starts, each the best of ``candidates`` random settings screened by their error,
and the best result is kept. Everything runs under one ``jax.jit``: ``vmap`` over curves,
``vmap`` over restarts, ``lax.scan`` over steps.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from neuraleq_jax import checks
from neuraleq_jax.data.dataset import EQDataset
from neuraleq_jax.fileio import atomic_write_text
from neuraleq_jax.model import paramspace, response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout

N_BANDS = 40
# The default band centres: 40 log-spaced frequencies from 20 Hz to 20 kHz (ratio 2^(log2(1000)/39),
# about a quarter octave), float32 [40]. A file's "freqs" field overrides them.
CURVE_FREQS = np.geomspace(20.0, 20_000.0, N_BANDS).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class CurveSet:
    """Curves loaded from a file.

    Attributes:
      words: ``N`` words (trimmed, lower-cased).
      gains_db: float32 ``[N, F]`` gains in dB at ``freqs``.
      freqs: float32 ``[F]`` band centres in Hz, increasing.
      agreement: float32 ``[N]``, NaN where an entry has none.
      counts: int64 ``[N]``, -1 where an entry has none.
      skipped: ``(entry index, reason)`` of entries skipped as malformed.
    """

    words: tuple[str, ...]
    gains_db: np.ndarray
    freqs: np.ndarray
    agreement: np.ndarray
    counts: np.ndarray
    skipped: tuple[tuple[int, str], ...] = ()

    def __len__(self) -> int:
        return len(self.words)


@dataclasses.dataclass(frozen=True)
class CurveFit:
    """Fitted settings: float32 ``settings [N, n_params]`` (always in range) and ``rms_db [N]``."""

    settings: np.ndarray
    rms_db: np.ndarray
    layout: EQLayout = DEFAULT_LAYOUT


def _check_freqs(freqs, sample_rate: float, where: str) -> np.ndarray:
    try:
        array = np.asarray(freqs, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: 'freqs' must be a list of numbers (Hz)") from None
    if array.ndim != 1 or len(array) < 2:
        raise ValueError(
            f"{where}: 'freqs' must be a flat list of at least 2 frequencies in Hz, "
            f"got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)) or np.any(array <= 0) or np.any(np.diff(array) <= 0):
        raise ValueError(f"{where}: 'freqs' must be finite, positive and strictly increasing (Hz)")
    if array[-1] >= sample_rate / 2:
        raise ValueError(
            f"{where}: 'freqs' go up to {array[-1]:g} Hz; they must stay below "
            f"Nyquist ({sample_rate / 2:g} Hz at {sample_rate:g} Hz)"
        )
    return array.astype(np.float32)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _parse_entry(entry, n_freqs: int) -> tuple[str, list[float], float, int]:
    """``(word, gains, agreement, count)`` of one entry; raises ValueError saying what is wrong."""
    if not isinstance(entry, dict):
        raise ValueError(
            f"must be an object with 'word' and 'gains_db', got {type(entry).__name__}"
        )
    word = entry.get("word")
    if not isinstance(word, str) or not word.strip():
        raise ValueError("'word' is missing or not a non-empty string")
    gains = entry.get("gains_db")
    if not isinstance(gains, list):
        audealize = " (its 'settings' are Audealize's: audealize.load_any_curve_file reads them)"
        raise ValueError(
            "'gains_db' is missing or not a list of numbers (dB)"
            + (audealize if "settings" in entry else "")
        )
    if len(gains) != n_freqs:
        raise ValueError(
            f"'gains_db' has {len(gains)} values, expected {n_freqs} (one per band of 'freqs')"
        )
    for index, value in enumerate(gains):
        if not _is_number(value):
            raise ValueError(f"gains_db[{index}] is {value!r}; gains must be finite numbers (dB)")
    agreement = entry.get("agreement", math.nan)
    if "agreement" in entry and not _is_number(agreement):
        raise ValueError(f"'agreement' is {agreement!r}; it must be a finite number")
    count = entry.get("count", -1)
    if "count" in entry and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise ValueError(f"'count' is {count!r}; it must be a non-negative integer")
    return word.strip().lower(), [float(g) for g in gains], float(agreement), int(count)


def parse_curves(
    document,
    *,
    on_malformed: str = "raise",
    source: str = "curves",
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> CurveSet:
    """Validate an already-decoded JSON document (see the module docstring) into a CurveSet.

    Args:
      on_malformed: "raise" (one ValueError listing every bad entry by 0-based index) or
        "skip" (drop them; they are listed in ``CurveSet.skipped``).
      source: a name for error messages (the file path).
    """
    checks.on_malformed(on_malformed)
    if isinstance(document, dict):
        if "entries" not in document:
            raise ValueError(
                f"{source}: an object must hold 'entries' (a list) and optionally "
                "'freqs'; or give a plain list of entries"
            )
        entries, freqs = document["entries"], document.get("freqs", CURVE_FREQS)
    else:
        entries, freqs = document, CURVE_FREQS
    if not isinstance(entries, list) or not entries:
        raise ValueError(
            f"{source}: expected a non-empty list of entries {{'word': ..., 'gains_db': [...]}}"
        )
    freqs = _check_freqs(freqs, sample_rate, source)
    parsed, skipped = [], []
    for index, entry in enumerate(entries):
        try:
            parsed.append(_parse_entry(entry, len(freqs)))
        except ValueError as error:
            skipped.append((index, str(error)))
    checks.check_entries(source, parsed, skipped, on_malformed)
    words, gains, agreement, counts = zip(*parsed)
    return CurveSet(
        words=tuple(words),
        gains_db=np.array(gains, dtype=np.float32),
        freqs=freqs,
        agreement=np.array(agreement, dtype=np.float32),
        counts=np.array(counts, dtype=np.int64),
        skipped=tuple(skipped),
    )


def load_curves(
    path: str | os.PathLike,
    *,
    on_malformed: str = "raise",
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> CurveSet:
    """Load and validate a curve file (format in the module docstring)."""
    return parse_curves(
        read_curve_document(path),
        on_malformed=on_malformed,
        source=str(path),
        sample_rate=sample_rate,
    )


def read_curve_document(path: str | os.PathLike):
    """The decoded JSON of a curve file (UTF-8, a byte-order mark tolerated), either kind;
    FileNotFoundError or a one-line ValueError when it cannot be read as JSON."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"curve file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error})") from None
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}: not valid JSON ({error}); expected a list of entries or "
            "{'freqs': [...], 'entries': [...]}"
        ) from None


def _fit_one(
    target_F, freqs_F, key, *, layout, sample_rate, steps, restarts, candidates, learning_rate
):
    """Best unit-space setting ``[P]`` and its mean squared error for one curve ``[F]``."""
    n_params = layout.n_params

    def error(unit_P):
        physical = paramspace.denormalize(unit_P, layout)
        fitted = response.magnitude_response_db(physical, freqs_F, sample_rate, layout)
        return jnp.mean((fitted - target_F) ** 2)

    errors = jax.vmap(error)

    # Starts: for each restart, the best of `candidates` uniform random settings.
    def screen(carry, candidate_key):
        best_RxP, best_R = carry
        draw_RxP = jax.random.uniform(
            candidate_key, (restarts, n_params), minval=-0.95, maxval=0.95
        )
        err_R = errors(draw_RxP)
        better = err_R < best_R
        return (
            jnp.where(better[:, None], draw_RxP, best_RxP),
            jnp.where(better, err_R, best_R),
        ), None

    start = (jnp.zeros((restarts, n_params)), jnp.full((restarts,), jnp.inf))
    (unit_RxP, _), _ = jax.lax.scan(screen, start, jax.random.split(key, candidates))

    # Adam is per coordinate, so one optimiser on the summed error is R independent fits.
    optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=0.05))

    def step(carry, _):
        unit_RxP, opt_state, best_RxP, best_R = carry
        err_R, grad_RxP = jax.vmap(jax.value_and_grad(error))(unit_RxP)
        better = err_R < best_R
        best_RxP = jnp.where(better[:, None], unit_RxP, best_RxP)
        best_R = jnp.where(better, err_R, best_R)
        updates, opt_state = optimizer.update(grad_RxP, opt_state, unit_RxP)
        unit_RxP = jnp.clip(optax.apply_updates(unit_RxP, updates), -1.0, 1.0)
        return (unit_RxP, opt_state, best_RxP, best_R), None

    carry = (unit_RxP, optimizer.init(unit_RxP), unit_RxP, jnp.full((restarts,), jnp.inf))
    (unit_RxP, _, best_RxP, best_R), _ = jax.lax.scan(step, carry, None, length=steps)
    final_R = errors(unit_RxP)
    best_RxP = jnp.where((final_R < best_R)[:, None], unit_RxP, best_RxP)
    best_R = jnp.minimum(final_R, best_R)
    winner = jnp.argmin(best_R)
    return best_RxP[winner], best_R[winner]


@functools.partial(
    jax.jit,
    static_argnames=("layout", "sample_rate", "steps", "restarts", "candidates", "learning_rate"),
)
def _fit_batch(
    targets_NxF, freqs_F, key, *, layout, sample_rate, steps, restarts, candidates, learning_rate
):
    keys = jax.random.split(key, targets_NxF.shape[0])
    fit = functools.partial(
        _fit_one,
        layout=layout,
        sample_rate=sample_rate,
        steps=steps,
        restarts=restarts,
        candidates=candidates,
        learning_rate=learning_rate,
    )
    unit_NxP, _ = jax.vmap(fit, in_axes=(0, None, 0))(targets_NxF, freqs_F, keys)
    # exp(log(x)) can land an ulp outside the range: clip, then measure the clipped setting
    settings_NxP = paramspace.clip(paramspace.denormalize(unit_NxP, layout), layout)
    fitted_NxF = response.magnitude_response_db(settings_NxP, freqs_F, sample_rate, layout)
    return settings_NxP, response.rms_db(fitted_NxF, targets_NxF)


def fit_curves(
    gains_db,
    freqs=CURVE_FREQS,
    *,
    layout: EQLayout = DEFAULT_LAYOUT,
    steps: int = 500,
    restarts: int = 32,
    candidates: int = 64,
    learning_rate: float = 0.1,
    seed: int = 0,
    batch_size: int = 256,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
    progress: bool = False,
) -> CurveFit:
    """Fit one setting of ``layout`` to each curve, by least squares on the dB response.

    Args:
      gains_db: ``[N, F]`` target gains in dB at ``freqs``.
      freqs: ``[F]`` increasing frequencies in Hz below Nyquist (default :data:`CURVE_FREQS`).
      steps: Adam steps per start (cosine-decayed learning rate, unit-space units).
      restarts: independent starts per curve; the best is kept.
      candidates: random settings screened for each start (1 = plain random starts).
      seed: results are deterministic given the seed and ``batch_size``.
      batch_size: curves per compiled call (the last batch is padded, so one compilation).
      progress: show a bar on stderr, advanced batch by batch (the first also compiles).
    Returns:
      :class:`CurveFit` with settings ``[N, n_params]`` in range and the RMS error in dB
      ``[N]`` of each fitted response against its curve at ``freqs``.
    """
    targets, freqs = _fit_inputs(gains_db, freqs, sample_rate)
    _check_fit_options(steps, restarts, candidates, batch_size, learning_rate)
    n = len(targets)
    size = min(n, int(batch_size))
    padded = np.concatenate([targets, np.repeat(targets[-1:], -n % size, axis=0)])
    key = jax.random.key(seed)
    settings, errors, bar = [], [], _fit_bar(n, progress)
    for index, start in enumerate(range(0, len(padded), size)):
        batch_settings, batch_rms = _fit_batch(
            jnp.asarray(padded[start : start + size]),
            jnp.asarray(freqs),
            jax.random.fold_in(key, index),
            layout=layout,
            sample_rate=float(sample_rate),
            steps=int(steps),
            restarts=int(restarts),
            candidates=int(candidates),
            learning_rate=float(learning_rate),
        )
        settings.append(np.asarray(batch_settings))
        errors.append(np.asarray(batch_rms))
        bar.update(min(size, n - start))
    bar.close()
    settings_NxP, rms_N = np.concatenate(settings)[:n], np.concatenate(errors)[:n]
    chex.assert_shape(settings_NxP, (n, layout.n_params))
    chex.assert_tree_all_finite((settings_NxP, rms_N))
    return CurveFit(
        settings=paramspace.validate(settings_NxP, layout, name="fitted settings"),
        rms_db=rms_N.astype(np.float32),
        layout=layout,
    )


def _fit_bar(curves: int, show: bool):
    """A bar on stderr over the curves fitted (disabled where ``show`` is false)."""
    desc = f"fitting 5 bands to {curves} curves"
    return tqdm(
        total=curves, unit="curve", desc=desc, disable=not show, file=sys.stderr, leave=False
    )


def _fit_inputs(gains_db, freqs, sample_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Target gains float32 ``[N, F]`` and their checked frequencies ``[F]``."""
    targets = np.asarray(gains_db, dtype=np.float32)
    if targets.ndim != 2 or len(targets) == 0:
        raise ValueError(
            f"gains_db must be a non-empty [N, F] array of dB values, got shape {targets.shape}"
        )
    if not np.all(np.isfinite(targets)):
        raise ValueError("gains_db must be finite")
    freqs = _check_freqs(freqs, sample_rate, "fit_curves")
    if targets.shape[1] != len(freqs):
        raise ValueError(f"gains_db has {targets.shape[1]} bands but freqs has {len(freqs)}")
    return targets, freqs


def _check_fit_options(steps, restarts, candidates, batch_size, learning_rate) -> None:
    for name, value in (
        ("steps", steps),
        ("restarts", restarts),
        ("candidates", candidates),
        ("batch_size", batch_size),
    ):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate}")


def dataset_from_fit(
    curves: CurveSet, fit: CurveFit, *, max_rms_db: float | None = None
) -> EQDataset:
    """An EQDataset of the fitted settings labelled with the curves' words.

    ``max_rms_db`` drops curves whose fit error exceeds it (no 5-band setting reproduces them).
    The vocabulary is the words in order of first appearance; there are no contributors.
    """
    if len(fit.settings) != len(curves):
        raise ValueError(f"fit has {len(fit.settings)} settings for {len(curves)} curves")
    keep = np.ones(len(curves), dtype=bool)
    if max_rms_db is not None:
        keep = fit.rms_db <= max_rms_db
        if not keep.any():
            raise ValueError(
                f"no curve was fitted within {max_rms_db} dB RMS "
                f"(best {float(fit.rms_db.min()):.2f} dB)"
            )
    words = [w for w, k in zip(curves.words, keep) if k]
    vocabulary = tuple(dict.fromkeys(words))
    word_ids = np.array([vocabulary.index(w) for w in words], dtype=np.int32)
    return EQDataset(
        settings=fit.settings[keep], word_ids=word_ids, vocabulary=vocabulary, layout=fit.layout
    )


def load_curve_dataset(
    path: str | os.PathLike,
    *,
    max_rms_db: float | None = None,
    on_malformed: str = "raise",
    **fit_options,
) -> tuple[EQDataset, CurveSet, CurveFit]:
    """Load a curve file, fit every curve and return ``(dataset, curves, fit)``.

    ``fit_options`` go to :func:`fit_curves` (layout, steps, restarts, candidates, seed, ...).
    """
    sample_rate = fit_options.get("sample_rate", response.DEFAULT_SAMPLE_RATE)
    curves = load_curves(path, on_malformed=on_malformed, sample_rate=sample_rate)
    dataset, fit = fit_curve_dataset(curves, max_rms_db=max_rms_db, **fit_options)
    return dataset, curves, fit


def fit_curve_dataset(
    curves: CurveSet, *, max_rms_db: float | None = None, **fit_options
) -> tuple[EQDataset, CurveFit]:
    """Fit every curve of ``curves`` (read from a file of either kind) and return
    ``(dataset, fit)``: :func:`fit_curves` with ``fit_options``, then :func:`dataset_from_fit`."""
    fit = fit_curves(curves.gains_db, curves.freqs, **fit_options)
    return dataset_from_fit(curves, fit, max_rms_db=max_rms_db), fit


def curve_document(
    words: Sequence[str], gains_db, freqs=None, *, agreement=None, counts=None
) -> dict:
    """A JSON-ready curve document (the inverse of :func:`parse_curves`), for writing files."""
    gains = np.asarray(gains_db, dtype=np.float64)
    document = {"entries": []}
    if freqs is not None:
        document["freqs"] = [float(f) for f in np.asarray(freqs)]
    for index, word in enumerate(words):
        entry = {"word": str(word), "gains_db": [float(g) for g in gains[index]]}
        if agreement is not None:
            entry["agreement"] = float(agreement[index])
        if counts is not None:
            entry["count"] = int(counts[index])
        document["entries"].append(entry)
    return document


def save_curves(path: str | os.PathLike, curves: CurveSet) -> Path:
    """Write a CurveSet as a curve file (atomically: temp file + ``os.replace``)."""
    path = Path(path)
    has_agreement = not np.all(np.isnan(curves.agreement))
    has_counts = bool(np.any(curves.counts >= 0))
    if (has_agreement and np.any(np.isnan(curves.agreement))) or (
        has_counts and np.any(curves.counts < 0)
    ):
        raise ValueError("agreement/counts must be given for every curve or for none")
    document = curve_document(
        curves.words,
        curves.gains_db,
        curves.freqs,
        agreement=curves.agreement if has_agreement else None,
        counts=curves.counts if has_counts else None,
    )
    return atomic_write_text(path, json.dumps(document))
