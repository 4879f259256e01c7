"""The labelled data set type, splits, and loading from named dicts."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence

import numpy as np

from neuraleq_jax.model import paramspace
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout

LABEL_KEYS = ("term", "semantic_label", "word", "label")


@dataclasses.dataclass(frozen=True)
class EQDataset:
    """Labelled EQ settings.

    Attributes:
      settings: float32 ``[N, n_params]`` physical values.
      word_ids: int32 ``[N]`` indices into ``vocabulary``.
      vocabulary: the words, in their fixed order.
      layout: the parameter layout the settings live in.
      contributors: optional ``[N]`` contributor ids (strings), for grouped splits.
    """

    settings: np.ndarray
    word_ids: np.ndarray
    vocabulary: tuple[str, ...]
    layout: EQLayout = DEFAULT_LAYOUT
    contributors: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.settings)
        if self.settings.ndim != 2 or self.settings.shape[1] != self.layout.n_params:
            raise ValueError(
                f"settings must be [N, {self.layout.n_params}], got {self.settings.shape}"
            )
        if self.word_ids.shape != (n,):
            raise ValueError(f"word_ids must be [{n}], got {self.word_ids.shape}")
        if n and (self.word_ids.min() < 0 or self.word_ids.max() >= len(self.vocabulary)):
            raise ValueError(f"word_ids must index the vocabulary of {len(self.vocabulary)} words")
        if self.contributors is not None and len(self.contributors) != n:
            raise ValueError(f"contributors must have {n} entries, got {len(self.contributors)}")

    def __len__(self) -> int:
        return len(self.settings)

    @property
    def words(self) -> list[str]:
        """The word of each setting, ``[N]``."""
        return [self.vocabulary[i] for i in self.word_ids]

    def counts(self) -> dict[str, int]:
        """Number of settings per word, in vocabulary order."""
        tally = np.bincount(self.word_ids, minlength=len(self.vocabulary))
        return {word: int(c) for word, c in zip(self.vocabulary, tally)}

    def subset(self, indices) -> EQDataset:
        """The settings at ``indices``, same vocabulary and layout."""
        indices = np.asarray(indices)
        return dataclasses.replace(
            self,
            settings=self.settings[indices],
            word_ids=self.word_ids[indices],
            contributors=None if self.contributors is None else self.contributors[indices],
        )

    def normalized(self) -> np.ndarray:
        """Settings in the unit space, float32 ``[N, n_params]``."""
        return np.asarray(paramspace.normalize(self.settings, self.layout), dtype=np.float32)


def word_index(word: str, vocabulary: Sequence[str]) -> int:
    """Index of ``word`` (trimmed, case-insensitive) or a ValueError listing the known words."""
    key = str(word).strip().lower()
    lowered = [w.lower() for w in vocabulary]
    if key in lowered:
        return lowered.index(key)
    close = difflib.get_close_matches(key, lowered, n=1, cutoff=0.5)
    hint = f" Did you mean {vocabulary[lowered.index(close[0])]!r}?" if close else ""
    raise ValueError(f"unknown word {word!r}; known words: {', '.join(vocabulary)}.{hint}")


def from_records(
    records: Sequence[Mapping],
    vocabulary: Sequence[str] | None = None,
    layout: EQLayout = DEFAULT_LAYOUT,
) -> EQDataset:
    """Build a dataset from dicts holding a word (``term``/``semantic_label``) and 15 parameters.

    The vocabulary is the given one, or the words in order of first appearance (never a set,
    so the order is deterministic).
    """
    records = list(records)
    if not records:
        raise ValueError("no settings given; expected a non-empty list of labelled dicts")
    labels = []
    for index, record in enumerate(records):
        key = next((k for k in LABEL_KEYS if k in record), None)
        if key is None:
            raise ValueError(f"setting {index} has no word; give one under one of {LABEL_KEYS}")
        labels.append(str(record[key]).strip().lower())
    settings = paramspace.from_dicts(records, layout)
    if vocabulary is None:
        vocabulary = tuple(dict.fromkeys(labels))
    vocabulary = tuple(vocabulary)
    word_ids = np.array([word_index(label, vocabulary) for label in labels], dtype=np.int32)
    return EQDataset(settings, word_ids, vocabulary, layout)


def from_arrays(
    settings,
    words: Sequence[str] | np.ndarray,
    vocabulary: Sequence[str] | None = None,
    layout: EQLayout = DEFAULT_LAYOUT,
) -> EQDataset:
    """Build a dataset from a ``[N, n_params]`` array and ``N`` words (or integer word ids)."""
    settings = paramspace.validate(settings, layout, name="settings")
    if settings.ndim != 2:
        raise ValueError(f"settings must be [N, {layout.n_params}], got {settings.shape}")
    words = np.asarray(words)
    if len(words) != len(settings):
        raise ValueError(f"got {len(settings)} settings but {len(words)} words")
    if np.issubdtype(words.dtype, np.integer):
        if vocabulary is None:
            raise ValueError("integer word ids need a vocabulary")
        return EQDataset(settings, words.astype(np.int32), tuple(vocabulary), layout)
    labels = [str(w).strip().lower() for w in words]
    vocabulary = tuple(vocabulary) if vocabulary is not None else tuple(dict.fromkeys(labels))
    word_ids = np.array([word_index(label, vocabulary) for label in labels], dtype=np.int32)
    return EQDataset(settings, word_ids, vocabulary, layout)


def as_dataset(eq_settings, vocabulary: Sequence[str] | None = None) -> EQDataset:
    """Labelled settings in any accepted form as an :class:`EQDataset`: an ``EQDataset``; a list
    of dicts each holding a word under ``term`` (or ``semantic_label``) and the named parameters
    ``band1_gain`` … ``band5_q``; or a pair ``(settings [N, P], words [N])``. ``vocabulary``
    fixes the word order (default: order of first appearance)."""
    if isinstance(eq_settings, EQDataset):
        if vocabulary is not None and tuple(vocabulary) != eq_settings.vocabulary:
            raise ValueError("vocabulary= disagrees with the dataset's own vocabulary")
        return eq_settings
    if isinstance(eq_settings, tuple) and len(eq_settings) == 2:
        return from_arrays(eq_settings[0], eq_settings[1], vocabulary)
    if (
        isinstance(eq_settings, Sequence)
        and not isinstance(eq_settings, str)
        and all(isinstance(r, Mapping) for r in eq_settings)
    ):
        return from_records(eq_settings, vocabulary)
    raise TypeError(
        f"cannot load {type(eq_settings).__name__}; give an EQDataset, a "
        f"list of dicts with 'term'/'semantic_label' and the 15 parameters "
        f"(band1_gain ... band5_q), or a tuple (settings [N, 15], words [N])"
    )


def stratified_split(
    dataset: EQDataset, fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
) -> tuple[EQDataset, ...]:
    """Split into parts (default train/validation/test) with each word's share kept per part.

    Each word's settings are shuffled by ``seed`` and cut at ``round(cumulative fraction ×
    count)``, so every part holds its share of every word to within one setting.
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    if (
        fractions.ndim != 1
        or len(fractions) < 2
        or np.any(fractions < 0)
        or not np.isclose(fractions.sum(), 1.0)
    ):
        raise ValueError(f"fractions must be >= 0 and sum to 1, got {fractions.tolist()}")
    rng = np.random.default_rng(seed)
    parts = [[] for _ in fractions]
    for word_id in range(len(dataset.vocabulary)):
        members = rng.permutation(np.flatnonzero(dataset.word_ids == word_id))
        cuts = np.round(np.cumsum(fractions)[:-1] * len(members)).astype(int)
        for part, chunk in zip(parts, np.split(members, cuts)):
            part.extend(chunk.tolist())
    return tuple(dataset.subset(np.sort(np.array(p, dtype=np.int64))) for p in parts)


def grouped_split(
    dataset: EQDataset, fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
) -> tuple[EQDataset, ...]:
    """Split by contributor: no contributor appears in two parts.

    Contributors are shuffled by ``seed`` and assigned greedily to the part furthest below its
    target share of settings, so part sizes approach ``fractions`` of the settings.
    """
    if dataset.contributors is None:
        raise ValueError("grouped_split needs a dataset with contributors")
    fractions = np.asarray(fractions, dtype=np.float64)
    if np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"fractions must be >= 0 and sum to 1, got {fractions.tolist()}")
    groups, inverse, sizes = np.unique(
        dataset.contributors, return_inverse=True, return_counts=True
    )
    order = np.random.default_rng(seed).permutation(len(groups))
    filled = np.zeros(len(fractions))
    assignment = np.empty(len(groups), dtype=np.int64)
    targets = fractions * len(dataset)
    for group in order:
        part = int(np.argmax(targets - filled))
        assignment[group] = part
        filled[part] += sizes[group]
    part_of_row = assignment[inverse]
    return tuple(dataset.subset(np.flatnonzero(part_of_row == p)) for p in range(len(fractions)))
