"""Training data from crowd vocabularies: Audealize's word curves, fused with SAFE-DB.

:func:`audealize_dataset` fits every curve of an Audealize file (:mod:`neuraleq_jax.data.audealize`)
with the batched JAX fit, then gives each word ``per_word`` variations spread like the crowd's
uncertainty. :func:`crowd_dataset` adds SAFE-DB's words with at least ``min_examples``
settings, in the standard ranges (SAFE's out-of-range frequencies and Q are clipped).

A word in both crowds (warm, bright, …) combines them weighted by contributors: its settings
are Audealize variations and SAFE settings in the ratio of the two crowds' contributor counts
(whichever source holds more than its share is subsampled, keeping at least one setting of
each). The crowds do not always agree: SAFE's warm and Audealize's warm correlate at only
r ≈ 0.69 at Audealize's frequencies, so a fused word sits between them and reproduces neither
exactly (the evaluation reports per-source fidelity and this disagreement).

Fits are cached (keyed by the file's digest and the fit options) under
``$NEURALEQ_JAX_FIT_CACHE`` (default ``~/.cache/neuraleq_jax/fits``; ``off`` disables), so that
evaluation rebuilds the training data in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neuraleq_jax.data import audealize, curves
from neuraleq_jax.data.safedb import load_safe_db
from neuraleq_jax.data.vocabulary import WordDataset
from neuraleq_jax.fileio import atomic_save_npz
from neuraleq_jax.model import paramspace, response

FIT_OPTIONS = {"steps": 500, "restarts": 16, "candidates": 64}


def _cache_dir() -> Path | None:
    folder = os.environ.get(
        "NEURALEQ_JAX_FIT_CACHE", str(Path.home() / ".cache" / "neuraleq_jax" / "fits")
    )
    return None if folder.lower() == "off" else Path(folder)


def fit_cached(
    gains_NxF, freqs_F, *, seed: int = 0, progress: bool = False, **options
) -> curves.CurveFit:
    """:func:`curves.fit_curves` (``FIT_OPTIONS`` unless given), cached on disk by a digest of
    the curves, frequencies, seed and options (float32 settings and errors in an ``.npz``);
    ``progress``: a bar on stderr while a fit runs (none when the cache answers)."""
    options = {**FIT_OPTIONS, **options}
    gains = np.ascontiguousarray(gains_NxF, np.float32)
    freqs = np.ascontiguousarray(freqs_F, np.float32)
    digest = hashlib.sha256(
        gains.tobytes()
        + freqs.tobytes()
        + json.dumps({"seed": seed, **options}, sort_keys=True).encode()
    ).hexdigest()[:32]
    folder = _cache_dir()
    path = folder / f"fit-{digest}.npz" if folder is not None else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as archive:
                settings, rms = archive["settings"], archive["rms_db"]
            if settings.shape == (len(gains), 15):
                return curves.CurveFit(settings=paramspace.validate(settings), rms_db=rms)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is refitted and overwritten
    fit = curves.fit_curves(gains, freqs, seed=seed, progress=progress, **options)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_save_npz(path, settings=fit.settings, rms_db=fit.rms_db)
        except OSError:
            pass  # the cache is an optimisation only
    return fit


def audealize_dataset(
    path,
    *,
    per_word: int = 24,
    seed: int = 0,
    spread_scale: float = 1.0,
    on_malformed: str = "skip",
    fit_options: dict | None = None,
    words: Sequence[str] = (),
    progress: bool = False,
) -> tuple[WordDataset, audealize.AudealizeSet, curves.CurveFit]:
    """Every word of an Audealize file, ``per_word`` settings each: ``(dataset, curves, fit)``.

    The vocabulary is the file's words in file order (English and Spanish), or ``words`` in
    their order when given (only those curves are fitted); the first setting
    of each word is its fitted curve, the others are :func:`audealize.variations` at the
    spread of :func:`audealize.spread_db` (times ``spread_scale``). Malformed entries are
    skipped (they are listed in ``curves.skipped``) unless ``on_malformed="raise"``.
    ``progress``: a bar on stderr while the curves are fitted.
    """
    if int(per_word) < 2:
        raise ValueError(f"per_word must be >= 2 (a word's settings form a cloud), got {per_word}")
    read = audealize.load_audealize(path, on_malformed=on_malformed)
    if words:
        read = read.subset(words)
    fit = fit_cached(
        read.gains_db, audealize.AUDEALIZE_FREQS, seed=seed, progress=progress,
        **(fit_options or {}),
    )  # fmt: skip
    spread = audealize.spread_db(read.gains_db, read.agreement, read.counts, scale=spread_scale)
    drawn = audealize.variations(fit.settings, spread, int(per_word), seed=seed)
    n_words = len(read)
    dataset = WordDataset(
        settings=drawn.reshape(-1, drawn.shape[-1]),
        word_ids=np.repeat(np.arange(n_words, dtype=np.int32), int(per_word)),
        vocabulary=read.words,
        source_names=("audealize",),
        source_settings=np.full((n_words, 1), int(per_word)),
        source_contributors=read.counts[:, None].astype(np.int64),
        source_agreement=read.agreement[:, None].astype(np.float64),
        langs=read.langs,
    )
    return dataset, read, fit


def safe_agreement(settings_NxP, word_ids_N, n_words: int, layout) -> np.ndarray:
    """Per word, the mean Pearson correlation between its settings' dB responses at Audealize's
    frequencies (clipped at 0): SAFE's counterpart of Audealize's agreement. ``[W]``, NaN for a
    word with a single setting."""
    db = np.asarray(
        response.magnitude_response_db(settings_NxP, audealize.AUDEALIZE_FREQS, layout=layout),
        np.float64,
    )
    out = np.full(n_words, np.nan)
    for w in range(n_words):
        mine = db[word_ids_N == w]
        if len(mine) > 1:
            r = np.corrcoef(mine)
            out[w] = max(float(np.nanmean(r[np.triu_indices(len(mine), 1)])), 0.0)
    return out


def _contributor_counts(dataset) -> np.ndarray:
    return np.array(
        [
            len(set(dataset.contributors[dataset.word_ids == w].tolist()))
            for w in range(len(dataset.vocabulary))
        ],
        np.int64,
    )


def _fused_counts(n_a: int, n_s: int, c_a: int, c_s: int) -> tuple[int, int]:
    """Settings kept from each source so that their ratio is the contributors' ``c_a : c_s``."""
    want_s = n_a * c_s / c_a
    if want_s <= n_s:
        return n_a, max(1, int(round(want_s)))
    return max(1, int(round(n_s * c_a / c_s))), n_s


def crowd_dataset(
    audealize_path,
    safe_path=None,
    *,
    per_word: int = 24,
    min_examples: int = 5,
    seed: int = 0,
    spread_scale: float = 1.0,
    progress: bool = False,
) -> WordDataset:
    """Audealize's words and SAFE-DB's words with ``min_examples`` settings, one vocabulary
    (Audealize's order, then SAFE's new words), in the standard layout. Sources ``("audealize",
    "safe")``; see the module docstring for how a word in both is combined."""
    adz, read, _ = audealize_dataset(
        audealize_path, per_word=per_word, seed=seed, spread_scale=spread_scale, progress=progress
    )
    safe, _ = load_safe_db(safe_path, layout="spec", min_examples=min_examples)
    vocabulary = tuple(dict.fromkeys(adz.vocabulary + safe.vocabulary))
    n_words, rng = len(vocabulary), np.random.default_rng(seed)
    safe_people = _contributor_counts(safe)
    safe_agree = safe_agreement(safe.settings, safe.word_ids, len(safe.vocabulary), safe.layout)
    settings, ids = [], []
    counts = np.zeros((n_words, 2), np.int64)
    people = np.full((n_words, 2), -1, np.int64)
    agreement = np.full((n_words, 2), np.nan)
    for w, word in enumerate(vocabulary):
        a_rows = np.flatnonzero(adz.word_ids == w) if w < len(adz.vocabulary) else np.empty(0, int)
        s_id = safe.vocabulary.index(word) if word in safe.vocabulary else -1
        s_rows = np.flatnonzero(safe.word_ids == s_id) if s_id >= 0 else np.empty(0, int)
        if len(a_rows) and len(s_rows):
            keep_a, keep_s = _fused_counts(
                len(a_rows), len(s_rows), int(read.counts[w]), int(safe_people[s_id])
            )
            a_rows = a_rows[:keep_a]  # the first is the fitted curve itself
            s_rows = np.sort(rng.choice(s_rows, keep_s, replace=False))
        settings += [adz.settings[a_rows], safe.settings[s_rows]]
        ids += [np.full(len(a_rows) + len(s_rows), w, np.int32)]
        counts[w] = len(a_rows), len(s_rows)
        if len(a_rows):
            people[w, 0], agreement[w, 0] = read.counts[w], read.agreement[w]
        if s_id >= 0:
            people[w, 1], agreement[w, 1] = safe_people[s_id], safe_agree[s_id]
    langs = adz.langs + ("English",) * (n_words - len(adz.vocabulary))
    return WordDataset(
        settings=np.concatenate(settings).astype(np.float32),
        word_ids=np.concatenate(ids),
        vocabulary=vocabulary,
        source_names=("audealize", "safe"),
        source_settings=counts,
        source_contributors=people,
        source_agreement=agreement,
        langs=langs,
    )
