"""The quality figures of a generator, as plain functions of arrays (any model, or the lite
baseline): range and box rates, response error, word accuracy, variation calibration and morph
smoothness and end points. :mod:`neuraleq_jax.evaluation.evaluator` computes them beside the latent
silhouette and the evaluation of a whole system.
"""

from __future__ import annotations

import numpy as np

from neuraleq_jax.metrics import arrays as eval_arrays
from neuraleq_jax.metrics import fidelity
from neuraleq_jax.model import response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout

responses_db = eval_arrays.responses_db
_rms = eval_arrays.rms
_settings = eval_arrays.check_settings
_word_ids = eval_arrays.check_word_ids


def in_range_rate(settings_NxP, *, layout: EQLayout = DEFAULT_LAYOUT, indices=None) -> float:
    """Share of settings whose parameters (all, or those at ``indices``) lie in the layout ranges.

    Bounds are compared in float32, the precision of :func:`paramspace.clip`, so a clipped
    setting counts as inside.
    """
    settings = _settings(settings_NxP, layout, "settings").reshape(-1, layout.n_params)
    cols = np.arange(layout.n_params) if indices is None else np.asarray(indices)
    lower = layout.lower.astype(np.float32)[cols]
    upper = layout.upper.astype(np.float32)[cols]
    inside = np.all((settings[:, cols] >= lower) & (settings[:, cols] <= upper), axis=1)
    return float(inside.mean()) if len(inside) else 1.0


def box_rate(
    settings_NxP,
    word_ids_N,
    boxes_WxBx2,
    *,
    margin_db: float = 0.5,
    layout: EQLayout = DEFAULT_LAYOUT,
) -> dict:
    """Box rate: share of generated gains inside their word's box widened by ``margin_db``.

    A gain counts as inside when ``low - margin <= gain <= high + margin`` (edges included, up
    to 1e-4 dB of float32 round-off) AND every frequency and Q of its setting lies in the
    layout's range; so one out-of-range frequency costs its setting all of its gains.

    Args:
      settings_NxP: generated physical settings.
      word_ids_N: the word each setting was generated for.
      boxes_WxBx2: per word and band ``[low, high]`` gains in dB.
    Returns:
      ``{"box_rate", "gain_in_box_rate", "freq_q_in_range_rate", "per_word" [W]}``,
      shares in [0, 1].
    """
    settings = _settings(settings_NxP, layout, "settings")
    boxes = np.asarray(boxes_WxBx2, dtype=np.float64)
    if (
        boxes.ndim != 3
        or boxes.shape[1:] != (layout.n_bands, 2)
        or np.any(boxes[..., 0] > boxes[..., 1])
    ):
        raise ValueError(
            f"boxes must be [W, {layout.n_bands}, 2] with low <= high, got shape {boxes.shape}"
        )
    ids = _word_ids(word_ids_N, len(settings), len(boxes))
    gains = settings[:, layout.gain_indices].astype(np.float64)
    tol = 1e-4
    low = boxes[ids, :, 0] - margin_db - tol
    high = boxes[ids, :, 1] + margin_db + tol
    in_box_NxB = (gains >= low) & (gains <= high)
    lower, upper = layout.lower.astype(np.float32), layout.upper.astype(np.float32)
    fq = np.concatenate([layout.freq_indices, layout.q_indices])
    fq_ok_N = np.all((settings[:, fq] >= lower[fq]) & (settings[:, fq] <= upper[fq]), axis=1)
    counted_NxB = in_box_NxB & fq_ok_N[:, None]
    per_word = [
        float(counted_NxB[ids == w].mean()) if np.any(ids == w) else float("nan")
        for w in range(len(boxes))
    ]
    return {
        "box_rate": float(counted_NxB.mean()),
        "gain_in_box_rate": float(in_box_NxB.mean()),
        "freq_q_in_range_rate": float(fq_ok_N.mean()),
        "per_word": per_word,
    }


def data_gain_boxes(
    settings_NxP,
    word_ids_N,
    n_words: int,
    *,
    percentiles: tuple[float, float] = (5.0, 95.0),
    layout: EQLayout = DEFAULT_LAYOUT,
) -> np.ndarray:
    """Boxes for data without known ones (real data): each word's per-band 5–95 % gain range.

    Returns:
      ``[n_words, n_bands, 2]`` dB, from the given (held-out) settings; a word without
      settings raises ValueError.
    """
    settings = _settings(settings_NxP, layout, "settings")
    ids = _word_ids(word_ids_N, len(settings), n_words)
    gains = settings[:, layout.gain_indices].astype(np.float64)
    boxes = np.empty((n_words, layout.n_bands, 2))
    for w in range(n_words):
        rows = gains[ids == w]
        if not len(rows):
            raise ValueError(f"word {w} has no settings, so no data box can be derived")
        boxes[w] = np.percentile(rows, percentiles, axis=0).T
    return boxes


def response_error(
    settings_NxP,
    reconstructed_NxP,
    *,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> dict:
    """Response error: RMS dB (reference grid) between settings' and reconstructions' responses.

    Returns:
      ``{"mean_db", "median_db", "p90_db", "max_db"}`` over the N settings.
    """
    settings = _settings(settings_NxP, layout, "settings")
    recon = _settings(reconstructed_NxP, layout, "reconstructed")
    if recon.shape != settings.shape:
        raise ValueError(f"reconstructed {recon.shape} must match settings {settings.shape}")
    err = _rms(
        responses_db(settings, layout=layout, sample_rate=sample_rate),
        responses_db(recon, layout=layout, sample_rate=sample_rate),
    )
    return {
        "mean_db": float(err.mean()),
        "median_db": float(np.median(err)),
        "p90_db": float(np.percentile(err, 90)),
        "max_db": float(err.max()),
    }


# the nearest-word classifier's centroids: each word's mean dB response over its (held-out)
# settings, ``[n_words, F]``; every word needs a setting
word_centroid_responses = fidelity.word_mean_responses


def nearest_word(
    settings_NxP,
    centroids_WxF,
    *,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> np.ndarray:
    """Nearest-word classifier: index of the centroid response nearest in RMS dB, ``[N]``."""
    resp = responses_db(
        _settings(settings_NxP, layout, "settings"), layout=layout, sample_rate=sample_rate
    )
    return np.argmin(_rms(resp[:, None, :], np.asarray(centroids_WxF)[None, :, :]), axis=1)


def word_accuracy(
    generated_NxP,
    asked_ids_N,
    heldout_settings_MxP,
    heldout_ids_M,
    n_words: int,
    *,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> dict:
    """Word accuracy of generated settings, beside the same classifier on the held-out data.

    The classifier labels a setting with the word whose mean held-out response is nearest in
    RMS dB. Returns ``{"generated", "data", "per_word_generated" [W]}``, shares in [0, 1],
    and the labels behind them: ``"predicted_generated" [N]`` and ``"predicted_data" [M]``.
    """
    generated = _settings(generated_NxP, layout, "generated")
    asked = _word_ids(asked_ids_N, len(generated), n_words, "asked_ids")
    heldout = _settings(heldout_settings_MxP, layout, "heldout_settings")
    heldout_ids = _word_ids(heldout_ids_M, len(heldout), n_words, "heldout_ids")
    kw = dict(layout=layout, sample_rate=sample_rate)
    centroids = word_centroid_responses(heldout, heldout_ids, n_words, **kw)
    predicted, predicted_data = (
        nearest_word(generated, centroids, **kw),
        nearest_word(heldout, centroids, **kw),
    )
    hit, data_hit = predicted == asked, predicted_data == heldout_ids
    return {
        "generated": float(hit.mean()),
        "data": float(data_hit.mean()),
        "per_word_generated": [
            float(hit[asked == w].mean()) if np.any(asked == w) else float("nan")
            for w in range(n_words)
        ],
        "predicted_generated": predicted,
        "predicted_data": predicted_data,
    }


def variation_calibration(
    generated_NxP,
    generated_ids_N,
    heldout_settings_MxP,
    heldout_ids_M,
    n_words: int,
    *,
    layout: EQLayout = DEFAULT_LAYOUT,
) -> dict:
    """Variation calibration: per word and band, std of generated gains ÷ std of the data's.

    Standard deviations are sample ones (ddof = 1), so both need >= 2 settings per word.
    A band whose data std is 0 gives NaN and is left out of the summary.
    Returns ``{"median", "min", "max", "ratios" [W][B]}``.
    """
    generated = _settings(generated_NxP, layout, "generated")
    gen_ids = _word_ids(generated_ids_N, len(generated), n_words, "generated_ids")
    heldout = _settings(heldout_settings_MxP, layout, "heldout_settings")
    data_ids = _word_ids(heldout_ids_M, len(heldout), n_words, "heldout_ids")
    ratios = np.empty((n_words, layout.n_bands))
    for w in range(n_words):
        gen = generated[gen_ids == w][:, layout.gain_indices].astype(np.float64)
        dat = heldout[data_ids == w][:, layout.gain_indices].astype(np.float64)
        if len(gen) < 2 or len(dat) < 2:
            raise ValueError(
                f"word {w}: calibration needs >= 2 generated and >= 2 data "
                f"settings, got {len(gen)} and {len(dat)}"
            )
        data_std = dat.std(axis=0, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios[w] = np.where(data_std > 0, gen.std(axis=0, ddof=1) / data_std, np.nan)
    finite = ratios[np.isfinite(ratios)]
    if not len(finite):
        raise ValueError("no band has a non-zero data gain std; calibration is undefined")
    return {
        "median": float(np.median(finite)),
        "min": float(finite.min()),
        "max": float(finite.max()),
        "ratios": ratios.tolist(),
    }


def path_smoothness(responses_SxF) -> float:
    """Largest RMS-dB distance between consecutive steps ÷ the mean one (1.0 = even steps).

    A path that never moves (every step 0 dB) counts as perfectly even: 1.0.
    """
    resp = np.asarray(responses_SxF, dtype=np.float64)
    if resp.ndim != 2 or len(resp) < 2:
        raise ValueError(f"a path needs shape [S >= 2, F], got {resp.shape}")
    steps = _rms(resp[1:], resp[:-1])
    mean = steps.mean()
    return float(steps.max() / mean) if mean > 0 else 1.0


def morph_smoothness(
    paths_PxSxP,
    *,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> np.ndarray:
    """Morph smoothness of each of P morph paths (settings ``[S, 15]`` each), ``[P]``."""
    paths = _settings(paths_PxSxP, layout, "paths", min_ndim=3)
    resp = responses_db(paths, layout=layout, sample_rate=sample_rate)
    return np.array([path_smoothness(r) for r in resp])


def morph_endpoint_error(
    paths_PxSxP,
    pairs_Px2,
    centre_settings_WxP,
    *,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> np.ndarray:
    """Morph end points: RMS dB of first/last step vs the words' own centre settings.

    Args:
      paths_PxSxP: P morph paths; path p goes from word ``pairs[p, 0]`` to ``pairs[p, 1]``.
      centre_settings_WxP: each word's centre setting (the system's own notion of it).
    Returns:
      ``[P, 2]`` dB: (first step vs start word's centre, last step vs end word's centre).
    """
    paths = _settings(paths_PxSxP, layout, "paths", min_ndim=3)
    centres = _settings(centre_settings_WxP, layout, "centre_settings")
    pairs = np.asarray(pairs_Px2)
    if pairs.shape != (len(paths), 2) or not np.issubdtype(pairs.dtype, np.integer):
        raise ValueError(f"pairs must be integer [{len(paths)}, 2], got {pairs.shape}")
    _word_ids(pairs.reshape(-1), pairs.size, len(centres), "pairs")
    kw = dict(layout=layout, sample_rate=sample_rate)
    ends = responses_db(np.stack([paths[:, 0], paths[:, -1]], axis=1), **kw)
    return _rms(ends, responses_db(centres, **kw)[pairs])
