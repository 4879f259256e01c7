"""Compound word descriptions → normalised weight vectors over a vocabulary.

Accepted forms (words are matched trimmed and case-insensitively):

- one word: ``"warm"``;
- equal blends: ``"warm and punchy"``, ``"warm + punchy"``, ``"warm, punchy"``;
- weighted blends: ``"0.7 warm + 0.3 bright"``, ``"0.7*warm + 0.3*bright"``, ``"70% warm, 30% bright"``;
- a mapping ``{"warm": 0.7, "bright": 0.3}`` or a sequence of words ``["warm", "punchy"]``;
- a weight vector of the vocabulary's length.

Weights must be finite and non-negative with a positive sum; they are normalised to sum 1.
A word named twice has its weights added.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

from neuraleq_jax.data.vocabulary import word_index

_SEPARATOR = re.compile(r"\s*(?:\+|,|;|&|\band\b)\s*", re.IGNORECASE)
_SUBTRACTION = re.compile(r"\S\s+-\s*(?:\d|\.|[a-z])", re.IGNORECASE)
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?"
_WEIGHTED = re.compile(
    rf"^\s*(?P<number>{_NUMBER})\s*(?P<percent>%)?\s*(?:\*|×)?\s*(?P<word>.+?)\s*$",
    re.IGNORECASE,
)
# a weight with no word after it ('0.3', '30%', '2*'); _WEIGHTED alone would split '0.3' into
# the weight '0.' and the word '3'
_BARE_WEIGHT = re.compile(rf"^\s*{_NUMBER}\s*%?\s*(?:\*|×)?\s*$", re.IGNORECASE)

ACCEPTED = (
    "a word ('warm'), a blend ('warm and punchy', '0.7 warm + 0.3 bright', "
    "'70% warm, 30% bright'), a dict {'warm': 0.7, 'bright': 0.3}, a list of words, "
    "or a weight vector over the vocabulary"
)


def _parse_string(text: str, vocabulary: Sequence[str]) -> list[tuple[str, float]]:
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"empty description; expected {ACCEPTED}")
    lowered = [w.lower() for w in vocabulary]
    if stripped.lower() in lowered:  # a vocabulary word may itself contain 'and' or spaces
        return [(stripped, 1.0)]
    if _SUBTRACTION.search(stripped):
        raise ValueError(
            f"description {text!r} subtracts a word; weights must be >= 0 (use {ACCEPTED})"
        )
    parts = _SEPARATOR.split(stripped)
    if any(not p for p in parts):
        raise ValueError(
            f"malformed description {text!r}: an empty part between separators; expected {ACCEPTED}"
        )
    terms, weighted = [], []
    for part in parts:
        if _BARE_WEIGHT.match(part) and part.lower() not in lowered:
            raise ValueError(
                f"description {text!r} has a weight with no word after it ({part!r}); "
                f"expected {ACCEPTED}"
            )
        match = None if part.lower() in lowered else _WEIGHTED.match(part)
        if match is None:  # a bare word (word_index reports an unknown one)
            terms.append((part, 1.0))
        else:
            value = float(match.group("number"))
            terms.append((match.group("word"), value / 100.0 if match.group("percent") else value))
        weighted.append(match is not None)
    if any(weighted) and not all(weighted):
        raise ValueError(
            f"description {text!r} weights some parts but not others; give a "
            f"weight for every part ('0.7 warm + 0.3 bright') or for none"
        )
    return terms


def parse_weights(term, vocabulary: Sequence[str]) -> np.ndarray:
    """A word, compound description, mapping, word list or weight vector → float32 ``[W]``
    weights summing to 1. Raises ValueError naming the problem (an unknown word gets one line:
    close spellings and how to list every word, see :func:`vocabulary.word_index`)."""
    vocabulary = tuple(vocabulary)
    if isinstance(term, str):
        pairs = _parse_string(term, vocabulary)
    elif isinstance(term, Mapping):
        pairs = list(term.items())
    elif (
        isinstance(term, np.ndarray)
        and term.dtype.kind in "fiu"
        or (
            isinstance(term, Sequence)
            and term
            and all(isinstance(v, (int, float, np.number)) for v in term)
        )
    ):
        vector = np.asarray(term, dtype=np.float64)
        if vector.shape != (len(vocabulary),):
            raise ValueError(
                f"a weight vector must have one entry per vocabulary word "
                f"({len(vocabulary)}: {', '.join(vocabulary)}); got shape "
                f"{vector.shape}"
            )
        pairs = list(zip(vocabulary, vector.tolist()))
    elif isinstance(term, Sequence) and term and all(isinstance(v, str) for v in term):
        pairs = [(word, 1.0) for word in term]
    else:
        raise TypeError(
            f"cannot read a word description from {type(term).__name__} {term!r}; "
            f"expected {ACCEPTED}"
        )

    weights = np.zeros(len(vocabulary), np.float64)
    for word, value in pairs:
        if not isinstance(word, str):
            raise TypeError(f"word names must be strings, got {word!r}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"weight of {word!r} must be a number, got {value!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"weight of {word!r} is {value}; weights must be finite and >= 0")
        weights[word_index(word, vocabulary)] += value
    total = weights.sum()
    if not total > 0:
        raise ValueError(
            f"the weights of {term!r} sum to 0; at least one word needs a positive weight"
        )
    return (weights / total).astype(np.float32)


def describe(weights_W, vocabulary: Sequence[str]) -> str:
    """Inverse of :func:`parse_weights` for display: ``"0.7 warm + 0.3 bright"``."""
    weights_W = np.asarray(weights_W, dtype=np.float64)
    parts = [(w, v) for w, v in zip(vocabulary, weights_W) if v > 0]
    if len(parts) == 1:
        return parts[0][0]
    return " + ".join(f"{v:.3g} {w}" for w, v in parts)
