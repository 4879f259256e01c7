"""The latent silhouette: how well held-out latents cluster by word (Euclidean silhouette)."""

import numpy as np

# Rows of the pairwise-distance block held at once in silhouette_score: bounds memory at
# about _CHUNK_ELEMENTS float64 values however large N is.
_CHUNK_ELEMENTS = 4_000_000


def silhouette_score(points_NxD, labels_N) -> float:
    """Mean silhouette coefficient with Euclidean distances (sklearn's definition).

    For each sample, ``a`` is its mean distance to the other members of its cluster and ``b``
    the smallest mean distance to the members of another cluster; its score is
    ``(b - a) / max(a, b)``, 0 for a member of a singleton cluster (and 0 where a = b = 0).

    Args:
      points_NxD: ``[N, D]`` finite points.
      labels_N: ``[N]`` cluster labels (any hashable values numpy can sort).

    Returns:
      The mean score over all N samples, in [-1, 1].
    """
    points = np.asarray(points_NxD, dtype=np.float64)
    labels = np.asarray(labels_N)
    if points.ndim != 2:
        raise ValueError(f"points must be [N, D], got shape {points.shape}")
    if labels.shape != (points.shape[0],):
        raise ValueError(f"labels must be [N] = [{points.shape[0]}], got shape {labels.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError("points must be finite (found NaN or Inf)")
    _, codes = np.unique(labels, return_inverse=True)
    n, n_clusters = len(points), int(codes.max()) + 1 if len(points) else 0
    if not 2 <= n_clusters <= n - 1:
        raise ValueError(
            f"silhouette needs 2 <= number of clusters <= N - 1; got "
            f"{n_clusters} clusters for N = {n}"
        )
    onehot_NxK = np.eye(n_clusters)[codes]
    counts_K = onehot_NxK.sum(axis=0)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n * points.shape[1]))
    sums_NxK = np.empty((n, n_clusters))
    for start in range(0, n, chunk):
        block = points[start : start + chunk]
        # direct differences (not the Gram expansion) so identical points are exactly 0 apart
        dist_CxN = np.sqrt(((block[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1))
        sums_NxK[start : start + chunk] = dist_CxN @ onehot_NxK
    own_counts = counts_K[codes]
    rows = np.arange(n)
    a = sums_NxK[rows, codes] / np.maximum(own_counts - 1, 1)
    means_NxK = sums_NxK / counts_K
    means_NxK[rows, codes] = np.inf
    b = means_NxK.min(axis=1)
    denom = np.maximum(a, b)
    score = np.where(denom > 0, (b - a) / np.where(denom > 0, denom, 1.0), 0.0)
    score = np.where(own_counts > 1, score, 0.0)
    return float(score.mean())


def latent_silhouette(latents_NxL, word_ids_N) -> float:
    """Latent silhouette: silhouette of held-out latents grouped by word (Euclidean)."""
    return silhouette_score(latents_NxL, word_ids_N)
