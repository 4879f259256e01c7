"""The bandwidth calibration's draw scores against the SPEC §6 figures computed directly.

The calibration scores each word's draws from one distance matrix and reuses the
bandwidth-independent terms; here every figure is recomputed per word with
:mod:`neuraleq_jax.metrics.fidelity`'s public functions and a brute-force nearest centroid.
"""

import numpy as np

from neuraleq_jax.generation import bandwidth
from neuraleq_jax.metrics import distances, fidelity

# both sides use float64 distances of dB-scale responses; they differ only in summation order
RTOL = 1e-10


def _sets(rng, n_words=3, fit=9, val=(5, 4, 1), train_extra=2, samples=12, freqs=16):
    """Responses of fit, training (fit + extra) and validation rows with their word ids, and
    draws ``[W, M, F]``; word 2 has one validation row, so it has no distribution match."""
    centres = rng.normal(0.0, 4.0, (n_words, freqs))
    fit_ids = np.repeat(np.arange(n_words), fit)
    fit_db = centres[fit_ids] + rng.normal(0.0, 1.0, (len(fit_ids), freqs))
    extra_ids = np.repeat(np.arange(n_words), train_extra)
    train_ids = np.concatenate([fit_ids, extra_ids])
    train_db = np.concatenate(
        [fit_db, centres[extra_ids] + rng.normal(0.0, 1.0, (len(extra_ids), freqs))]
    )
    val_ids = np.repeat(np.arange(n_words), val)
    val_db = centres[val_ids] + rng.normal(0.0, 1.0, (len(val_ids), freqs))
    draws = centres[:, None] + rng.normal(0.0, 1.5, (n_words, samples, freqs))
    # a few exact copies of training rows (copy distance 0) and a draw nearer another word
    draws[0, :3] = train_db[train_ids == 0][:3]
    draws[1, 0] = centres[2]
    return (fit_db, fit_ids, train_db, train_ids, val_db, val_ids), draws


def _direct_scores(draws, fit_db, fit_ids, train_db, train_ids, val_db, val_ids):
    n_words, samples = draws.shape[:2]
    ratios, copies, recognised = [], [], 0
    centroids = np.stack([fit_db[fit_ids == w].mean(0) for w in range(n_words)])
    for w in range(n_words):
        fit, val = fit_db[fit_ids == w], val_db[val_ids == w]
        if len(val) >= 2 and len(fit) >= 2:
            ratios.append(
                distances.energy_distance(draws[w], val, a_size=len(fit))
                / distances.energy_distance(fit, val)
            )
        nearest = distances.nearest_distance(draws[w], train_db[train_ids == w])
        copies.extend(nearest <= fidelity.COPY_THRESHOLD_DB)
        to_centroids = np.sqrt(((draws[w][:, None] - centroids[None]) ** 2).mean(-1))
        recognised += int(np.sum(to_centroids.argmin(1) == w))
    return np.mean(ratios), np.mean(copies), recognised / (n_words * samples)


def test_draw_scores_match_the_fidelity_figures_computed_per_word():
    rng = np.random.default_rng(7)
    data, draws = _sets(rng)
    scoring = bandwidth._scoring_data(*data, 3)
    match, copy_rate, accuracy = bandwidth._draw_scores(draws, scoring)
    want_match, want_copy, want_accuracy = _direct_scores(draws, *data)
    np.testing.assert_allclose(match, want_match, rtol=RTOL)
    assert copy_rate == want_copy == 3 / 36
    assert accuracy == want_accuracy < 1.0


def test_reused_terms_do_not_leak_between_draw_sets():
    """Scoring a second set of draws with the same precomputed terms gives that set's figures
    (what the calibration does for each bandwidth)."""
    rng = np.random.default_rng(8)
    data, first = _sets(rng)
    second = first + rng.normal(0.0, 2.0, first.shape)
    scoring = bandwidth._scoring_data(*data, 3)
    bandwidth._draw_scores(first, scoring)
    got = bandwidth._draw_scores(second, scoring)
    np.testing.assert_allclose(got, _direct_scores(second, *data), rtol=RTOL)
