"""A model's vocabulary: where each word came from, how sure the crowd was, describe, word map.

- :class:`WordDataset` is an :class:`~neuraleq_jax.data.dataset.EQDataset` that also knows each word's
  sources (Audealize, SAFE-DB, synthetic …): contributors, agreement, settings, language.
  Training stores that in the word model (:func:`bundle_arrays`), so a loaded model answers
  :func:`word_info` without its data.
- Confidence of a word (:func:`confidence`) is the Spearman-Brown reliability of the crowd's
  mean: ``n ρ / (1 + (n - 1) ρ)`` with ``n`` contributors (all sources) and ``ρ`` their
  contributor-weighted agreement. None where either is unknown (synthetic words).
- :func:`describe` names the words nearest a setting: the RMS dB distance over the
  reference grid (256 log-spaced points, 20 Hz–20 kHz) between the setting's response and each
  word's centre response (the response of the word's centre setting, the morph end point).
- :func:`word_map` lays the vocabulary out in 2-D: classical MDS (= PCA) of the words' centre
  responses, scaled so that map distances approximate RMS dB distances.
- Unknown words get one line: up to five close spellings and how to list every word.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence

import numpy as np

from neuraleq_jax.data.dataset import EQDataset
from neuraleq_jax.model import paramspace, response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout

SMALL_VOCABULARY = 20  # up to this many words, an unknown-word message lists them all
INFO_PREFIX = "info_"
WORD_MAP_KEY = "word_map_Wx2"


# ------------------------------------------------------------------ unknown words


def word_index(word: str, vocabulary: Sequence[str]) -> int:
    """Index of ``word`` (trimmed, case-insensitive) in ``vocabulary``, or a one-line
    ValueError: every known word for a small vocabulary, else up to five close spellings and
    how to list them all."""
    key = str(word).strip().lower()
    lowered = [w.lower() for w in vocabulary]
    try:
        return lowered.index(key)
    except ValueError:
        raise ValueError(unknown_word_message(word, vocabulary)) from None


def unknown_word_message(word, vocabulary: Sequence[str]) -> str:
    """The one-line message for an unknown ``word`` (see :func:`word_index`)."""
    key = str(word).strip().lower()
    lowered = [w.lower() for w in vocabulary]
    close = difflib.get_close_matches(key, lowered, n=5, cutoff=0.5)
    names = [vocabulary[lowered.index(c)] for c in close]
    hint = f" Did you mean {names[0]!r}?" if names else ""
    if len(vocabulary) <= SMALL_VOCABULARY:
        return f"unknown word {word!r}; known words: {', '.join(vocabulary)}.{hint}"
    spelled = f"close spellings: {', '.join(names)}; " if names else ""
    return (
        f"unknown word {word!r} ({len(vocabulary)} known words; {spelled}list them all "
        f"with `neuraleq words` or system.vocabulary).{hint}"
    )


# ------------------------------------------------------------------ sources of the words


@dataclasses.dataclass(frozen=True)
class WordDataset(EQDataset):
    """An EQDataset with each word's sources (``W`` words, ``S`` sources).

    Attributes:
      source_names: ``S`` names (``"audealize"``, ``"safe"``, ``"synthetic"``, ``"data"``).
      source_settings: int ``[W, S]`` settings the source gave the word (0: not in it).
      source_contributors: int ``[W, S]`` people behind them, -1 where unknown.
      source_agreement: float ``[W, S]`` their agreement (0–1), NaN where unknown.
      langs: ``W`` languages ("" where unknown).
    Splits (``subset``) keep these per-word figures of the whole data set.
    """

    source_names: tuple[str, ...] = ()
    source_settings: np.ndarray | None = None
    source_contributors: np.ndarray | None = None
    source_agreement: np.ndarray | None = None
    langs: tuple[str, ...] = ()


def plain_sources(dataset: EQDataset, name: str = "data") -> dict[str, np.ndarray]:
    """Source arrays (see :func:`bundle_arrays`) for a dataset of one source: settings per word,
    contributors counted from ``dataset.contributors`` (-1 without them), no agreement."""
    n_words = len(dataset.vocabulary)
    settings = np.bincount(dataset.word_ids, minlength=n_words)[:, None]
    contributors = np.full((n_words, 1), -1)
    if dataset.contributors is not None:
        for w in range(n_words):
            contributors[w, 0] = len(set(dataset.contributors[dataset.word_ids == w].tolist()))
    return {
        "source_names_S": np.array([name]),
        "source_settings_WxS": settings,
        "source_contributors_WxS": contributors,
        "source_agreement_WxS": np.full((n_words, 1), np.nan),
        "langs_W": np.full(n_words, ""),
    }


def with_sources(dataset: EQDataset, name: str) -> WordDataset:
    """``dataset`` as a single-source :class:`WordDataset` named ``name``."""
    arrays = plain_sources(dataset, name)
    return WordDataset(
        **{f.name: getattr(dataset, f.name) for f in dataclasses.fields(EQDataset)},
        source_names=(name,),
        source_settings=arrays["source_settings_WxS"],
        source_contributors=arrays["source_contributors_WxS"],
        source_agreement=arrays["source_agreement_WxS"],
        langs=("",) * len(dataset.vocabulary),
    )


def bundle_arrays(dataset: EQDataset, word_model: dict) -> dict[str, np.ndarray]:
    """The arrays a word model stores about its vocabulary: the sources (``info_*``, numeric or
    fixed-width text, no objects) and the word map ``word_map_Wx2`` (:func:`word_map` of the
    model's centre responses)."""
    if isinstance(dataset, WordDataset) and dataset.source_settings is not None:
        arrays = {
            "source_names_S": np.array(dataset.source_names),
            "source_settings_WxS": dataset.source_settings,
            "source_contributors_WxS": dataset.source_contributors,
            "source_agreement_WxS": dataset.source_agreement,
            "langs_W": np.array(dataset.langs if dataset.langs else [""] * len(dataset.vocabulary)),
        }
    else:
        arrays = plain_sources(dataset)
    out = {INFO_PREFIX + k: np.asarray(v) for k, v in arrays.items()}
    out[INFO_PREFIX + "source_settings_WxS"] = out[INFO_PREFIX + "source_settings_WxS"].astype(
        np.int32
    )
    out[INFO_PREFIX + "source_contributors_WxS"] = out[
        INFO_PREFIX + "source_contributors_WxS"
    ].astype(np.int32)
    out[INFO_PREFIX + "source_agreement_WxS"] = out[INFO_PREFIX + "source_agreement_WxS"].astype(
        np.float32
    )
    out[WORD_MAP_KEY] = word_map(word_model["centre_responses_WxF"])
    return out


def confidence(agreement, contributors) -> float | None:
    """Spearman-Brown reliability ``n ρ / (1 + (n - 1) ρ)`` of a crowd mean (0–1), or None
    where the agreement ``ρ`` or the contributor count ``n`` is unknown."""
    if agreement is None or contributors is None or not np.isfinite(agreement):
        return None
    rho = float(np.clip(agreement, 0.0, 1.0))
    n = max(int(contributors), 1)
    return n * rho / (1.0 + (n - 1) * rho) if rho > 0 else 0.0


def word_info(word: str, vocabulary: Sequence[str], word_model: dict) -> dict:
    """What the model knows about ``word``'s origin (see :class:`WordDataset`).

    Returns ``{"word", "sources": [{"name", "contributors", "agreement", "settings"}],
    "contributors" (total, None if any source's is unknown), "agreement" (contributor-weighted
    mean of the known ones, None if none), "confidence" (:func:`confidence`), "lang"}``.
    A model saved without source arrays reports one source ``"data"`` with its settings count.
    """
    w = word_index(word, vocabulary)
    key = INFO_PREFIX + "source_names_S"
    if key in word_model:
        names = [str(n) for n in word_model[key]]
        settings = word_model[INFO_PREFIX + "source_settings_WxS"][w]
        people = word_model[INFO_PREFIX + "source_contributors_WxS"][w]
        agree = word_model[INFO_PREFIX + "source_agreement_WxS"][w]
        lang = str(word_model[INFO_PREFIX + "langs_W"][w]) or None
    else:
        names, settings = ["data"], [int(word_model["counts_W"][w])]
        people, agree, lang = [-1], [np.nan], None
    sources = [
        {
            "name": name,
            "settings": int(s),
            "contributors": int(p) if p >= 0 else None,
            "agreement": float(a) if np.isfinite(a) else None,
        }
        for name, s, p, a in zip(names, settings, people, agree)
        if s > 0
    ]
    counts = [s["contributors"] for s in sources]
    total = None if not counts or None in counts else int(sum(counts))
    known = [
        (s["agreement"], s["contributors"] or 1) for s in sources if s["agreement"] is not None
    ]
    agreement = float(sum(a * n for a, n in known) / sum(n for _, n in known)) if known else None
    return {
        "word": vocabulary[w],
        "sources": sources,
        "contributors": total,
        "agreement": agreement,
        "confidence": confidence(agreement, total),
        "lang": lang,
    }


# ------------------------------------------------------------------ describe and the map


def nearest_words(responses_NxF, centre_responses_WxF, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` words whose centre responses are nearest each response (RMS dB over the grid),
    nearest first: ``(indices [N, k], distances_db [N, k])``. Float64 throughout, so that a
    word's own centre (distance 0) is never outranked by round-off."""
    r = np.asarray(responses_NxF, np.float64)
    c = np.asarray(centre_responses_WxF, np.float64)
    k = min(int(k), len(c))
    squared = ((r**2).sum(1)[:, None] + (c**2).sum(1)[None] - 2.0 * r @ c.T) / r.shape[1]
    distances = np.sqrt(np.clip(squared, 0.0, None))
    part = (
        np.argpartition(distances, k - 1, axis=1)[:, :k]
        if k < len(c)
        else np.tile(np.arange(len(c)), (len(r), 1))
    )
    order = np.take_along_axis(
        part, np.argsort(np.take_along_axis(distances, part, 1), 1, kind="stable"), 1
    )
    return order, np.take_along_axis(distances, order, 1)


def settings_rows(settings, layout: EQLayout = DEFAULT_LAYOUT) -> tuple[np.ndarray, bool]:
    """``(settings [N, P] validated, whether one setting was given)`` from a setting ``[P]``, a
    named dict, ``[N, P]`` or a list of named dicts."""
    if isinstance(settings, Mapping):
        return paramspace.from_dicts([settings], layout), True
    if (
        isinstance(settings, Sequence)
        and settings
        and all(isinstance(row, Mapping) for row in settings)
    ):
        return paramspace.from_dicts(settings, layout), False
    array = paramspace.validate(settings, layout, name="settings")
    if array.ndim not in (1, 2):
        raise ValueError(
            f"settings must be [{layout.n_params}] or [N, {layout.n_params}], got "
            f"shape {array.shape}"
        )
    return array.reshape(-1, layout.n_params), array.ndim == 1


def describe(
    settings,
    centre_responses_WxF,
    words: Sequence[str],
    k: int = 5,
    layout: EQLayout = DEFAULT_LAYOUT,
):
    """The ``k`` words nearest each setting (see :func:`settings_rows` for the forms), as
    ``(word, distance_db)`` lists nearest first; a single setting gives one list."""
    settings_NxP, single = settings_rows(settings, layout)
    responses_NxF = np.asarray(response.magnitude_response_db(settings_NxP, layout=layout))
    indices, distances = nearest_words(responses_NxF, centre_responses_WxF, k)
    named = [
        [(words[i], float(d)) for i, d in zip(row_i, row_d)]
        for row_i, row_d in zip(indices.tolist(), distances.tolist())
    ]
    return named[0] if single else named


def word_map(centre_responses_WxF) -> np.ndarray:
    """2-D layout of the words, float32 ``[W, 2]``: classical MDS of the centre responses (their
    first two principal components), divided by ``sqrt(F)`` so that distances on the map
    approximate RMS dB distances. Each axis is signed so that its largest coordinate is
    positive (a deterministic orientation)."""
    responses = np.asarray(centre_responses_WxF, np.float64)
    centred = responses - responses.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    points = np.zeros((len(responses), 2))
    n = min(2, len(s))
    points[:, :n] = u[:, :n] * s[:n] / np.sqrt(responses.shape[1])
    for axis in range(2):
        peak = np.argmax(np.abs(points[:, axis]))
        if points[peak, axis] < 0:
            points[:, axis] *= -1.0
    return points.astype(np.float32)


def map_agreement(points_Wx2, reference_Wx2) -> float:
    """Spearman correlation between the pairwise distances of two 2-D layouts of the same words
    (invariant to rotation, reflection and scale)."""
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

    a, b = np.asarray(points_Wx2, np.float64), np.asarray(reference_Wx2, np.float64)
    if a.shape != b.shape or a.ndim != 2 or len(a) < 3:
        raise ValueError(
            f"map_agreement needs two [W >= 3, 2] layouts, got {a.shape} and {b.shape}"
        )
    return float(spearmanr(pdist(a), pdist(b)).statistic)
