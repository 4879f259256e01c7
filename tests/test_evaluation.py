"""Tests of the SPEC §6 figures against hand-computable cases and plain reference loops."""

import math

import numpy as np
import pytest

from neuraleq_jax import evaluation


def _silhouette_loop(points, labels):
    """Reference: the textbook definition, one sample at a time."""
    n = len(points)
    scores = []
    for i in range(n):
        same = [j for j in range(n) if labels[j] == labels[i] and j != i]
        if not same:
            scores.append(0.0)
            continue
        dist = lambda j: math.sqrt(sum((points[i][d] - points[j][d]) ** 2
                                       for d in range(len(points[i]))))
        a = sum(dist(j) for j in same) / len(same)
        b = min(sum(dist(j) for j in range(n) if labels[j] == other)
                / sum(1 for j in range(n) if labels[j] == other)
                for other in set(labels) if other != labels[i])
        scores.append((b - a) / max(a, b) if max(a, b) > 0 else 0.0)
    return sum(scores) / n


def test_silhouette_matches_reference_loop():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(41, 3)) + np.repeat(np.eye(3) * 2.0, [14, 14, 13], axis=0)
    labels = np.repeat([0, 1, 2], [14, 14, 13])
    labels[5] = 7  # a singleton cluster scores 0
    expected = _silhouette_loop(points.tolist(), labels.tolist())
    assert evaluation.silhouette_score(points, labels) == pytest.approx(expected, rel=1e-12)


def test_silhouette_string_labels_and_chunking(monkeypatch):
    rng = np.random.default_rng(1)
    points = rng.normal(size=(30, 4))
    labels = np.array(["warm", "bright", "soft"] * 10)
    expected = _silhouette_loop(points.tolist(), labels.tolist())
    monkeypatch.setattr(evaluation, "_CHUNK_ELEMENTS", 8)  # several row blocks
    assert evaluation.silhouette_score(points, labels) == pytest.approx(expected, rel=1e-12)


def test_silhouette_identical_clusters_is_one():
    points = np.repeat(np.array([[0.0, 0.0], [3.0, 4.0], [-1.0, 7.0]]), 5, axis=0)
    assert evaluation.silhouette_score(points, np.repeat([0, 1, 2], 5)) == 1.0


@pytest.mark.parametrize("labels", [np.zeros(4), np.arange(4)])
def test_silhouette_rejects_degenerate_label_counts(labels):
    with pytest.raises(ValueError, match="number of clusters"):
        evaluation.silhouette_score(np.random.default_rng(0).normal(size=(4, 2)), labels)


def test_silhouette_rejects_bad_shapes_and_nan():
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        evaluation.silhouette_score(np.zeros(5), np.arange(5))
    with pytest.raises(ValueError, match=r"labels must be"):
        evaluation.silhouette_score(np.zeros((5, 2)), np.arange(4))
    with pytest.raises(ValueError, match="finite"):
        evaluation.silhouette_score(np.full((4, 2), np.nan), np.array([0, 0, 1, 1]))
