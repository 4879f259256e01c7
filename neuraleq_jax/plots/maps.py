"""2-D maps: latent points coloured by word, and the vocabulary's word map."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neuraleq_jax.plots.figures import (
    check_out_path,
    check_points,
    new_figure,
    require_matplotlib,
    save,
)


def plot_latent_2d(
    points_Nx2, labels, vocabulary: Sequence[str], out_path, *, title: str | None = None
) -> Path:
    """A 2-D map of latent points (e.g. a PCA projection), coloured by word.

    Args:
      points_Nx2: float ``[N, 2]``.
      labels: ``[N]`` word ids (indices into ``vocabulary``) or words.
      vocabulary: the words, in their fixed order (sets the colours and legend order).
    Returns:
      ``out_path`` as a Path.
    """
    matplotlib, _, _ = require_matplotlib()
    points_Nx2 = check_points(points_Nx2)
    vocabulary = tuple(vocabulary)
    if not vocabulary or len(set(vocabulary)) != len(vocabulary):
        raise ValueError(f"vocabulary must be non-empty with unique words; got {vocabulary}")
    ids_N = _word_ids(labels, vocabulary, len(points_Nx2))
    out_path = check_out_path(out_path)
    palette = matplotlib.colormaps["tab10" if len(vocabulary) <= 10 else "tab20"]
    figure = new_figure((6.5, 5.5))
    axes = figure.add_subplot()
    for word_id, word in enumerate(vocabulary):
        mine = points_Nx2[ids_N == word_id]
        if not len(mine):
            continue
        colour = palette(word_id % palette.N)
        axes.scatter(mine[:, 0], mine[:, 1], s=14, color=colour, alpha=0.75, label=word)
        centre = mine.mean(axis=0)
        axes.annotate(
            word,
            centre,
            ha="center",
            va="center",
            fontsize="small",
            fontweight="bold",
            bbox={"boxstyle": "round", "fc": "white", "ec": colour, "alpha": 0.8},
        )
    axes.set_xlabel("latent dimension 1")
    axes.set_ylabel("latent dimension 2")
    axes.grid(True, alpha=0.3)
    if title:
        axes.set_title(title)
    axes.legend(fontsize="small", loc="best", markerscale=1.5)
    return save(figure, out_path)


def _word_ids(labels, vocabulary: tuple[str, ...], n: int) -> np.ndarray:
    """Word ids or words ``[N]`` → int ids ``[N]`` into ``vocabulary``, with clear errors."""
    labels = list(labels) if not isinstance(labels, np.ndarray) else labels.tolist()
    if len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries but points has {n} rows")
    if all(isinstance(label, str) for label in labels):
        unknown = sorted({label for label in labels if label not in vocabulary})
        if unknown:
            raise ValueError(f"unknown words {unknown}; the vocabulary is {list(vocabulary)}")
        return np.array([vocabulary.index(label) for label in labels], dtype=np.int64)
    ids = np.asarray(labels)
    if not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= len(vocabulary):
        raise ValueError(
            f"labels must be words or integer ids in [0, {len(vocabulary)}); "
            f"got values from {ids.min()!r} to {ids.max()!r}"
        )
    return ids.astype(np.int64)


def _map_sizes(confidence, n: int) -> np.ndarray:
    """Marker areas (pt²) from confidences in [0, 1] (None → the smallest size)."""
    if confidence is None:
        return np.full(n, 40.0)
    values = np.array([np.nan if c is None else float(c) for c in confidence], np.float64)
    if len(values) != n:
        raise ValueError(f"confidence has {len(values)} entries for {n} words")
    return 15.0 + 160.0 * np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)


def _uncluttered(points_Wx2, order, cells=(36, 70)) -> list[int]:
    """Words to label, in ``order`` (most important first), at most one per cell of a
    ``cells`` (columns, rows) grid over the points' range, so that labels do not overprint."""
    low, high = points_Wx2.min(0), points_Wx2.max(0)
    size = np.maximum(high - low, 1e-9) / np.array(cells)
    taken, chosen = set(), []
    for index in order:
        cell = tuple(((points_Wx2[index] - low) // size).astype(int))
        if cell not in taken:
            taken.add(cell)
            chosen.append(int(index))
    return chosen


def plot_word_map(
    points_Wx2,
    words: Sequence[str],
    out_path,
    *,
    confidence=None,
    title: str | None = None,
    max_labels: int = 400,
) -> Path:
    """The vocabulary's 2-D word map: one marker per word, sized by its confidence (0–1, or
    None), labelled in small type with a white halo so that crowded labels stay readable.

    Args:
      points_Wx2: float ``[W, 2]`` (e.g. ``system.word_map()``).
      words: ``W`` words in the same order.
      confidence: ``W`` values in [0, 1] or None (e.g. ``system.word_info(w)["confidence"]``).
      max_labels: label at most this many words, the most confident first, and at most one
        per small cell of the map (the others are markers only).
    Returns:
      ``out_path`` as a Path.
    """
    require_matplotlib()
    import matplotlib.patheffects as effects

    words = [str(w) for w in words]
    points = check_points(points_Wx2, len(words))
    out_path = check_out_path(out_path)
    sizes = _map_sizes(confidence, len(words))
    side = float(np.clip(4.0 + 0.35 * np.sqrt(len(words)), 6.0, 16.0))
    figure = new_figure((side * 1.15, side))
    axes = figure.add_subplot()
    axes.scatter(
        points[:, 0], points[:, 1], s=sizes, c=sizes, cmap="viridis", alpha=0.6, edgecolors="none"
    )
    halo = [effects.withStroke(linewidth=2.0, foreground="white")]
    for index in _uncluttered(points, np.argsort(-sizes, kind="stable"))[:max_labels]:
        axes.annotate(
            words[index],
            points[index],
            fontsize=6 if len(words) > 60 else 9,
            ha="center",
            va="bottom",
            xytext=(0, 2),
            textcoords="offset points",
            path_effects=halo,
        )
    axes.set_xlabel("map axis 1 (≈ RMS dB)")
    axes.set_ylabel("map axis 2 (≈ RMS dB)")
    axes.grid(True, alpha=0.3)
    axes.set_title(title or f"word map: {len(words)} words (marker size: confidence)")
    return save(figure, out_path)
