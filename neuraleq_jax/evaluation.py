"""The quality figures of SPEC §6, as plain functions of arrays (any model, or the baseline)."""

from __future__ import annotations

import numpy as np

from neuraleq_jax import eval_arrays, fidelity, response, synthetic
from neuraleq_jax.fidelity import (  # noqa: F401  (re-exported: SPEC §6's fidelity figures)
    blend_fidelity,
    copy_rate,
    distribution_match,
    energy_distance,
    mean_response_error,
    unit_gaussian_settings,
)
from neuraleq_jax.goals import GOALS, REAL_DATA_BOUNDS, check_goals  # noqa: F401 (re-exported)
from neuraleq_jax.paramspace import DEFAULT_LAYOUT, EQLayout

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


# ---------------------------------------------------------------- responses and distances

responses_db = eval_arrays.responses_db
_rms = eval_arrays.rms
_settings = eval_arrays.check_settings
_word_ids = eval_arrays.check_word_ids


# ---------------------------------------------------------------- the SPEC §6 figures


def latent_silhouette(latents_NxL, word_ids_N) -> float:
    """Latent silhouette: silhouette of held-out latents grouped by word (Euclidean)."""
    return silhouette_score(latents_NxL, word_ids_N)


def in_range_rate(settings_Nx15, *, layout: EQLayout = DEFAULT_LAYOUT, indices=None) -> float:
    """Share of settings whose parameters (all, or those at ``indices``) lie in the layout ranges.

    Bounds are compared in float32, the precision of :func:`paramspace.clip`, so a clipped
    setting counts as inside.
    """
    settings = _settings(settings_Nx15, layout, "settings").reshape(-1, layout.n_params)
    cols = np.arange(layout.n_params) if indices is None else np.asarray(indices)
    lower = layout.lower.astype(np.float32)[cols]
    upper = layout.upper.astype(np.float32)[cols]
    inside = np.all((settings[:, cols] >= lower) & (settings[:, cols] <= upper), axis=1)
    return float(inside.mean()) if len(inside) else 1.0


def box_rate(
    settings_Nx15,
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
      settings_Nx15: generated physical settings.
      word_ids_N: the word each setting was generated for.
      boxes_WxBx2: per word and band ``[low, high]`` gains in dB.
    Returns:
      ``{"box_rate", "gain_in_box_rate", "freq_q_in_range_rate", "per_word" [W]}``,
      shares in [0, 1].
    """
    settings = _settings(settings_Nx15, layout, "settings")
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
    settings_Nx15,
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
    settings = _settings(settings_Nx15, layout, "settings")
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
    settings_Nx15,
    reconstructed_Nx15,
    *,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> dict:
    """Response error: RMS dB (reference grid) between settings' and reconstructions' responses.

    Returns:
      ``{"mean_db", "median_db", "p90_db", "max_db"}`` over the N settings.
    """
    settings = _settings(settings_Nx15, layout, "settings")
    recon = _settings(reconstructed_Nx15, layout, "reconstructed")
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


def word_centroid_responses(
    settings_Nx15,
    word_ids_N,
    n_words: int,
    *,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> np.ndarray:
    """Each word's mean dB response over its (held-out) settings, ``[n_words, 256]``."""
    settings = _settings(settings_Nx15, layout, "settings")
    ids = _word_ids(word_ids_N, len(settings), n_words)
    counts = np.bincount(ids, minlength=n_words)
    if np.any(counts == 0):
        raise ValueError(
            f"every word needs held-out settings; missing word ids "
            f"{np.flatnonzero(counts == 0).tolist()}"
        )
    resp = responses_db(settings, layout=layout, sample_rate=sample_rate)
    return (np.eye(n_words)[ids].T @ resp) / counts[:, None]


def nearest_word(
    settings_Nx15,
    centroids_WxF,
    *,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> np.ndarray:
    """Nearest-word classifier: index of the centroid response nearest in RMS dB, ``[N]``."""
    resp = responses_db(
        _settings(settings_Nx15, layout, "settings"), layout=layout, sample_rate=sample_rate
    )
    return np.argmin(_rms(resp[:, None, :], np.asarray(centroids_WxF)[None, :, :]), axis=1)


def word_accuracy(
    generated_Nx15,
    asked_ids_N,
    heldout_settings_Mx15,
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
    generated = _settings(generated_Nx15, layout, "generated")
    asked = _word_ids(asked_ids_N, len(generated), n_words, "asked_ids")
    heldout = _settings(heldout_settings_Mx15, layout, "heldout_settings")
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
    generated_Nx15,
    generated_ids_N,
    heldout_settings_Mx15,
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
    generated = _settings(generated_Nx15, layout, "generated")
    gen_ids = _word_ids(generated_ids_N, len(generated), n_words, "generated_ids")
    heldout = _settings(heldout_settings_Mx15, layout, "heldout_settings")
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
    paths_PxSx15,
    *,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> np.ndarray:
    """Morph smoothness of each of P morph paths (settings ``[S, 15]`` each), ``[P]``."""
    paths = _settings(paths_PxSx15, layout, "paths", min_ndim=3)
    resp = responses_db(paths, layout=layout, sample_rate=sample_rate)
    return np.array([path_smoothness(r) for r in resp])


def morph_endpoint_error(
    paths_PxSx15,
    pairs_Px2,
    centre_settings_Wx15,
    *,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> np.ndarray:
    """Morph end points: RMS dB of first/last step vs the words' own centre settings.

    Args:
      paths_PxSx15: P morph paths; path p goes from word ``pairs[p, 0]`` to ``pairs[p, 1]``.
      centre_settings_Wx15: each word's centre setting (the system's own notion of it).
    Returns:
      ``[P, 2]`` dB: (first step vs start word's centre, last step vs end word's centre).
    """
    paths = _settings(paths_PxSx15, layout, "paths", min_ndim=3)
    centres = _settings(centre_settings_Wx15, layout, "centre_settings")
    pairs = np.asarray(pairs_Px2)
    if pairs.shape != (len(paths), 2) or not np.issubdtype(pairs.dtype, np.integer):
        raise ValueError(f"pairs must be integer [{len(paths)}, 2], got {pairs.shape}")
    _word_ids(pairs.reshape(-1), pairs.size, len(centres), "pairs")
    kw = dict(layout=layout, sample_rate=sample_rate)
    ends = responses_db(np.stack([paths[:, 0], paths[:, -1]], axis=1), **kw)
    return _rms(ends, responses_db(centres, **kw)[pairs])


# ---------------------------------------------------------------- a whole system


def word_pairs(n_words: int) -> np.ndarray:
    """Every unordered word pair ``(i, j)``, ``i < j``, in vocabulary order: ``[P, 2]``."""
    return np.array(
        [(i, j) for i in range(n_words) for j in range(i + 1, n_words)], dtype=np.int64
    ).reshape(-1, 2)


def default_boxes(vocabulary, heldout, layout: EQLayout) -> tuple[np.ndarray, str]:
    """The synthetic set's boxes when the vocabulary and layout are the synthetic ones, else
    the held-out data's per-word 5–95 % gain ranges. Returns ``(boxes, source)``."""
    if tuple(vocabulary) == synthetic.VOCABULARY and layout == DEFAULT_LAYOUT:
        return synthetic.GAIN_BOXES_DB.astype(np.float64), "synthetic word boxes (SPEC §3)"
    boxes = data_gain_boxes(heldout.settings, heldout.word_ids, len(vocabulary), layout=layout)
    return boxes, "held-out data's per-word, per-band 5–95 % gain range"


def generated_set_figures(
    generated_Nx15,
    generated_ids_N,
    train,
    heldout,
    *,
    accuracy_heldout=None,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> dict:
    """:func:`fidelity.generated_figures` against ``heldout``, plus the word accuracy of the
    same generated set (for a system's variations and for the reference generators alike),
    its classifier built on ``accuracy_heldout`` (default ``heldout``)."""
    out = fidelity.generated_figures(
        generated_Nx15, generated_ids_N, train, heldout, sample_rate=sample_rate
    )
    judge = heldout if accuracy_heldout is None else accuracy_heldout
    accuracy = word_accuracy(
        generated_Nx15,
        generated_ids_N,
        judge.settings,
        judge.word_ids,
        len(judge.vocabulary),
        layout=judge.layout,
        sample_rate=sample_rate,
    )
    out.update(word_accuracy=accuracy["generated"], word_accuracy_data=accuracy["data"])
    return out


def _fidelity_part(
    system,
    train,
    heldout,
    gen,
    gen_ids,
    *,
    n_variations: int,
    seed: int,
    sample_rate: float,
    accuracy_heldout,
) -> tuple[dict, dict]:
    """The fidelity figures of a system: ``(flat figures, details)``. Without training data
    only blend fidelity is computed; with it, also the system's generated-set figures and the
    reference of decoding its own training latents (``reconstruct(train)``)."""
    blends = fidelity.system_blend_fidelity(
        system, heldout, variations=n_variations, seed=seed, sample_rate=sample_rate
    )
    flat = {key: value for key, value in blends.items() if key != "details"}
    details = {"blend_fidelity": blends["details"]}
    if train is not None:
        figures = fidelity.generated_figures(gen, gen_ids, train, heldout, sample_rate=sample_rate)
        details["fidelity"] = figures.pop("details")
        flat.update(figures)
        decoded = generated_set_figures(
            np.asarray(system.reconstruct(train.settings)),
            train.word_ids,
            train,
            heldout,
            accuracy_heldout=accuracy_heldout,
            sample_rate=sample_rate,
        )
        details["decoded_training"] = decoded
    return flat, details


def evaluate_system(
    system,
    heldout,
    *,
    train=None,
    fidelity_heldout=None,
    n_variations: int = 100,
    steps: int = 33,
    seed: int = 0,
    boxes=None,
    n_explore: int = 64,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
    return_arrays: bool = False,
) -> dict:
    """Every SPEC §6 figure for a system (the neural facade or :class:`LiteBaseline`).

    The system must offer ``vocabulary``, ``layout``, ``encode(settings)``,
    ``reconstruct(settings)``,
    ``generate_eq_from_semantic(word, variations, seed=, as_array=True)``,
    ``morph_between_terms(a, b, steps, seed=, as_array=True)``,
    ``explore_latent_space(n_samples, seed=, as_array=True)`` and ``centre_settings()`` ``[W, 15]``.

    Args:
      heldout: an EQDataset not used for training, with the system's vocabulary and layout.
      train: the system's training EQDataset; needed for distribution match, copy rate and
        the mean-response figure (left out without it). Blend fidelity needs only held-out data.
      fidelity_heldout: the held-out settings that distribution match, the mean-response
        figure and blend fidelity compare with (default ``heldout``): for the synthetic set,
        a larger fresh draw makes these ratios far less noisy than a ~10-per-word split.
      n_variations: generated settings per word (box rate, word accuracy, calibration,
        distribution match, copy rate) and per ordered word pair's "0.7 a + 0.3 b" blend.
      steps: morph steps for every word pair (SPEC: 33).
      boxes: ``[W, B, 2]`` gain boxes; default :func:`default_boxes`.
      return_arrays: also return the arrays behind the figures under ``"arrays"`` (for plots).
    Returns:
      A JSON-ready dict: flat figures (``latent_silhouette``, ``box_rate``,
      ``response_error_mean_db`` …, see :data:`GOALS`) plus ``"details"`` and ``"setup"``.
    """
    vocabulary, layout = tuple(system.vocabulary), system.layout
    if tuple(heldout.vocabulary) != vocabulary or heldout.layout != layout:
        raise ValueError(
            f"held-out data (words {heldout.vocabulary}) must share the system's "
            f"vocabulary {vocabulary} and layout"
        )
    if int(n_variations) < 2 or int(steps) < 2:
        raise ValueError(f"n_variations and steps must be >= 2, got {n_variations}, {steps}")
    n_words = len(vocabulary)
    kw = dict(layout=layout, sample_rate=sample_rate)
    settings, ids = heldout.settings, heldout.word_ids

    latents = np.asarray(system.encode(settings))
    recon = np.asarray(system.reconstruct(settings))
    generated_WxVxP = np.stack(
        [
            np.asarray(
                system.generate_eq_from_semantic(
                    word, variations=int(n_variations), seed=seed + w, as_array=True
                )
            )
            for w, word in enumerate(vocabulary)
        ]
    )
    gen = generated_WxVxP.reshape(-1, layout.n_params)
    gen_ids = np.repeat(np.arange(n_words), generated_WxVxP.shape[1])
    pairs = word_pairs(n_words)
    paths = np.stack(
        [
            np.asarray(
                system.morph_between_terms(
                    vocabulary[a], vocabulary[b], steps=int(steps), seed=seed, as_array=True
                )
            )
            for a, b in pairs
        ]
    )
    centres = np.asarray(system.centre_settings())
    explored = np.asarray(
        system.explore_latent_space(n_samples=int(n_explore), seed=seed, as_array=True)
    )
    if boxes is None:
        boxes, box_source = default_boxes(vocabulary, heldout, layout)
    else:
        box_source = "given by the caller"

    boxes_out = box_rate(gen, gen_ids, boxes, layout=layout)
    recon_err = response_error(settings, recon, **kw)
    accuracy = word_accuracy(gen, gen_ids, settings, ids, n_words, **kw)
    calibration = variation_calibration(gen, gen_ids, settings, ids, n_words, layout=layout)
    smooth = morph_smoothness(paths, **kw)
    ends = morph_endpoint_error(paths, pairs, centres, **kw)
    fidelity_flat, fidelity_details = _fidelity_part(
        system,
        train,
        heldout if fidelity_heldout is None else fidelity_heldout,
        gen,
        gen_ids,
        n_variations=int(n_variations),
        seed=seed,
        sample_rate=sample_rate,
        accuracy_heldout=heldout,
    )
    returned = np.concatenate(
        [gen, paths.reshape(-1, layout.n_params), centres, explored.reshape(-1, layout.n_params)]
    )
    worst = int(np.argmax(smooth))
    result = {
        "latent_silhouette": latent_silhouette(latents, ids),
        "box_rate": boxes_out["box_rate"],
        "gain_in_box_rate": boxes_out["gain_in_box_rate"],
        "freq_q_in_range_rate": boxes_out["freq_q_in_range_rate"],
        "response_error_mean_db": recon_err["mean_db"],
        "response_error_median_db": recon_err["median_db"],
        "word_accuracy": accuracy["generated"],
        "word_accuracy_data": accuracy["data"],
        "calibration_median": calibration["median"],
        "calibration_min": calibration["min"],
        "calibration_max": calibration["max"],
        "morph_smoothness_max": float(smooth.max()),
        "morph_smoothness_median": float(np.median(smooth)),
        "morph_endpoint_max_db": float(ends.max()),
        "morph_endpoint_mean_db": float(ends.mean()),
        "all_in_range": in_range_rate(returned, layout=layout) == 1.0,
        **fidelity_flat,
        "details": {
            **fidelity_details,
            "box_rate_per_word": dict(zip(vocabulary, boxes_out["per_word"])),
            "response_error_db": recon_err,
            "word_accuracy_per_word": dict(zip(vocabulary, accuracy["per_word_generated"])),
            "calibration_ratios": dict(zip(vocabulary, calibration["ratios"])),
            "morph_smoothness": {
                f"{vocabulary[a]}->{vocabulary[b]}": float(s) for (a, b), s in zip(pairs, smooth)
            },
            "morph_endpoint_db": {
                f"{vocabulary[a]}->{vocabulary[b]}": [float(e) for e in row]
                for (a, b), row in zip(pairs, ends)
            },
            "worst_morph": f"{vocabulary[pairs[worst, 0]]}->{vocabulary[pairs[worst, 1]]}",
        },
        "setup": {
            "n_heldout": int(len(heldout)),
            "n_variations": int(n_variations),
            "steps": int(steps),
            "seed": int(seed),
            "n_pairs": int(len(pairs)),
            "n_train": None if train is None else int(len(train)),
            "n_fidelity_heldout": int(
                len(heldout if fidelity_heldout is None else fidelity_heldout)
            ),
            "boxes": box_source,
            "box_margin_db": 0.5,
            "sample_rate": float(sample_rate),
        },
    }
    if return_arrays:
        result["arrays"] = {
            "latents": latents,
            "word_ids": np.asarray(ids),
            "generated": generated_WxVxP,
            "generated_word_ids": gen_ids,
            "generated_predicted": accuracy["predicted_generated"],
            "data_predicted": accuracy["predicted_data"],
            "paths": paths,
            "pairs": pairs,
            "centres": centres,
            "reconstructed": recon,
            "explored": explored,
        }
    return result
