"""RMS-dB distances between sets of responses, and the energy distance built on them.

Every distance is the RMS-dB distance between two responses on one grid ``[N, F]``, computed
in row blocks so that memory stays bounded however large the sets are.

Energy distance. For sets A (n responses) and B (m responses),
``ED = 2·E‖a−b‖ − E‖a−a′‖ − E‖b−b′‖``. The cross term is the mean over all n·m pairs. The
within terms are V-statistics by default: the mean over all n² ordered pairs, self-pairs (0)
included, which equals ``(1 − 1/n)·U_A`` with ``U_A`` the unbiased mean over the n(n−1)
distinct pairs. For two samples of one distribution the V form's expectation is
``D·(1/n + 1/m)`` (D the distribution's mean pairwise distance): the sampling-noise floor
that makes "energy distance ÷ the data's own" a meaningful ratio. The U form (pass
``statistic="u"``) is unbiased for the population distance (0 for equal distributions) and can
be slightly negative.
"""

from __future__ import annotations

import numpy as np

# Distance-block elements held at once: bounds memory at about this many float64 values.
_BLOCK_ELEMENTS = 4_000_000


def _responses(array, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or not len(array) or not array.shape[1]:
        raise ValueError(f"{name} must be non-empty responses [N, F], got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite (found NaN or Inf)")
    return array


def _distance_blocks(a_NxF, b_MxF, same: bool):
    """Yield ``(start, distances [C, M])`` row blocks of RMS-dB distances.

    Uses ``|a|² + |b|² − 2 a·b`` in float64 (error ~1e-13 dB² at dB-scale responses, far below
    any threshold used here); with ``same`` the self-distances are set to exactly 0.
    """
    n_freqs = a_NxF.shape[1]
    sq_b = (b_MxF**2).sum(axis=1)
    rows = max(1, _BLOCK_ELEMENTS // max(1, len(b_MxF)))
    for start in range(0, len(a_NxF), rows):
        block = a_NxF[start : start + rows]
        sq = (block**2).sum(axis=1)[:, None] + sq_b[None, :] - 2.0 * block @ b_MxF.T
        dist = np.sqrt(np.maximum(sq, 0.0) / n_freqs)
        if same:
            index = np.arange(len(block))
            dist[index, start + index] = 0.0
        yield start, dist


def mean_pairwise_distance(a_NxF, b_MxF=None) -> float:
    """Mean RMS-dB distance over all pairs of A × B; with B omitted, over the N(N−1) distinct
    ordered pairs within A (the unbiased U form; N ≥ 2)."""
    a = _responses(a_NxF, "a")
    same = b_MxF is None
    b = a if same else _responses(b_MxF, "b")
    if b.shape[1] != a.shape[1]:
        raise ValueError(f"a and b must share the grid: {a.shape[1]} vs {b.shape[1]} points")
    if same and len(a) < 2:
        raise ValueError("the within-set mean needs at least 2 responses")
    total = sum(float(d.sum()) for _, d in _distance_blocks(a, b, same))
    return total / (len(a) * (len(a) - 1) if same else len(a) * len(b))


def nearest_distance(a_NxF, b_MxF) -> np.ndarray:
    """For each response of A, the RMS-dB distance to its nearest response in B: ``[N]``."""
    a, b = _responses(a_NxF, "a"), _responses(b_MxF, "b")
    if b.shape[1] != a.shape[1]:
        raise ValueError(f"a and b must share the grid: {a.shape[1]} vs {b.shape[1]} points")
    out = np.empty(len(a))
    for start, dist in _distance_blocks(a, b, False):
        out[start : start + len(dist)] = dist.min(axis=1)
    return out


def energy_distance(a_NxF, b_MxF, *, statistic: str = "v", a_size: int | None = None) -> float:
    """Energy distance ``2·E‖a−b‖ − E‖a−a′‖ − E‖b−b′‖`` between two sets of responses.

    Args:
      a_NxF, b_MxF: responses (dB) on one grid; each set needs ≥ 2 members.
      statistic: ``"v"`` (default): within terms over all ordered pairs, self-pairs included,
        ``(1 − 1/n)·U``; ``"u"``: over distinct pairs only, ``U`` (unbiased, may be < 0).
      a_size: V form only: weight A's within term as for a set of this size,
        ``(1 − 1/a_size)·U_A`` (the V statistic when ``a_size = N``, the default).
    Returns:
      The distance in dB (RMS-dB units).
    """
    if statistic not in ("v", "u"):
        raise ValueError(f"statistic must be 'v' or 'u', got {statistic!r}")
    if a_size is not None and (statistic != "v" or int(a_size) < 1):
        raise ValueError(f"a_size must be an integer >= 1 with statistic 'v', got {a_size!r}")
    a, b = _responses(a_NxF, "a"), _responses(b_MxF, "b")
    cross = mean_pairwise_distance(a, b)
    within_a, within_b = mean_pairwise_distance(a), mean_pairwise_distance(b)
    if statistic == "u":
        return 2.0 * cross - within_a - within_b
    return energy_from_means(
        cross, within_a, within_b, len(a) if a_size is None else a_size, len(b)
    )


def energy_from_means(
    cross: float, within_a: float, within_b: float, size_a: int, size_b: int
) -> float:
    """The V-form energy distance (dB) from its mean distances: ``cross`` over A × B and the
    U-form within means of A and B (:func:`mean_pairwise_distance`), each within term
    weighted as for a set of ``size_a`` / ``size_b`` members, ``(1 − 1/size)·U``. Lets a
    caller that scores many sets against one reuse the reference set's terms."""
    within_a *= 1.0 - 1.0 / int(size_a)
    within_b *= 1.0 - 1.0 / int(size_b)
    return 2.0 * cross - within_a - within_b
