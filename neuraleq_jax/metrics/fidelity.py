"""How faithfully generated settings sound like the data: distribution match, copy
rate, blend fidelity and the mean-response figure, as plain functions of arrays.

Every distance here is the RMS-dB distance between two responses on the reference grid
(:func:`neuraleq_jax.metrics.arrays.responses_db`). The functions taking responses work on any
grid ``[N, F]``; the ones taking settings compute the responses first.

Energy distance and the RMS-dB distances are in :mod:`neuraleq_jax.metrics.distances`.

Distribution match compares a word's generated variations with its held-out settings, divided
by the same statistic for the word's training settings against the held-out ones. So that a
generator drawing from the data's own distribution scores 1 in expectation whatever the
number of variations, the generated set's within term is weighted as for a set of the
training set's size: ``(1 − 1/n_train)·U_gen`` (:func:`energy_distance`'s ``a_size``).
"""

from __future__ import annotations

import numpy as np

from neuraleq_jax.metrics.arrays import check_settings, check_word_ids, responses_db, rms
from neuraleq_jax.metrics.distances import energy_distance, nearest_distance
from neuraleq_jax.model import paramspace, response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout

COPY_THRESHOLD_DB = 0.1
BLEND_WEIGHT = 0.7
# blend per setting: the blends judged, and how far apart (× the larger word's own spread) their
# two words' mean responses must lie for a nearest-word test to mean something
PER_SETTING_WEIGHTS = (0.5, 0.6)
PER_SETTING_SEPARATION = 1.25


# ---------------------------------------------------------------- figures on settings


def _grouped(
    settings, ids, n_words: int, name: str, layout: EQLayout, sample_rate: float, minimum: int = 1
) -> list[np.ndarray]:
    """Responses of each word's settings, ``W × [n_w, F]``; each word needs ``minimum``."""
    settings = check_settings(settings, layout, name)
    ids = check_word_ids(ids, len(settings), n_words, f"{name} word ids")
    resp = responses_db(settings, layout=layout, sample_rate=sample_rate)
    groups = [resp[ids == w] for w in range(n_words)]
    short = [w for w, g in enumerate(groups) if len(g) < minimum]
    if short:
        raise ValueError(
            f"{name}: every word needs >= {minimum} settings; word ids {short} "
            f"have {[len(groups[w]) for w in short]}"
        )
    return groups


def _summary(per_word, worst_is_max: bool = True) -> dict:
    values = np.asarray(per_word, dtype=np.float64)
    worst = int(np.nanargmax(values) if worst_is_max else np.nanargmin(values))
    return {
        "mean": float(np.nanmean(values)),
        "worst": float(values[worst]),
        "worst_word": worst,
        "per_word": values.tolist(),
    }


def distribution_match(
    generated_NxP,
    generated_ids_N,
    train_MxP,
    train_ids_M,
    heldout_KxP,
    heldout_ids_K,
    n_words: int,
    *,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> dict:
    """Distribution match per word: ED(generated, held-out) ÷ ED(training, held-out).

    Both are V-form energy distances of responses (module docstring), the generated set's
    within term weighted as for the word's training-set size, so sampling the data's own
    distribution scores 1 in expectation; a generator with too little spread scores ≫ 1.
    Every word needs ≥ 2 settings in each of the three sets.

    Returns:
      ``{"mean", "worst", "worst_word" (word id), "per_word" [W], "energy_generated" [W],
      "energy_data" [W]}``; energies in dB.
    """
    kw = dict(layout=layout, sample_rate=sample_rate, minimum=2)
    generated = _grouped(generated_NxP, generated_ids_N, n_words, "generated", **kw)
    train = _grouped(train_MxP, train_ids_M, n_words, "train", **kw)
    heldout = _grouped(heldout_KxP, heldout_ids_K, n_words, "heldout", **kw)
    energy_gen = np.array(
        [energy_distance(g, h, a_size=len(t)) for g, t, h in zip(generated, train, heldout)]
    )
    energy_data = np.array([energy_distance(t, h) for t, h in zip(train, heldout)])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = energy_gen / energy_data
    out = _summary(ratios)
    out.update(energy_generated=energy_gen.tolist(), energy_data=energy_data.tolist())
    return out


def copy_rate(
    generated_NxP,
    generated_ids_N,
    train_MxP,
    train_ids_M,
    n_words: int,
    *,
    threshold_db: float = COPY_THRESHOLD_DB,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> dict:
    """Copy rate: share of generated settings whose response lies within ``threshold_db`` RMS
    dB (inclusive) of some training setting of the same word.

    Returns:
      ``{"rate", "per_word" [W] (NaN for a word without generated settings),
      "nearest_median_db", "threshold_db"}``.
    """
    kw = dict(layout=layout, sample_rate=sample_rate)
    generated = _grouped(generated_NxP, generated_ids_N, n_words, "generated", minimum=0, **kw)
    train = _grouped(train_MxP, train_ids_M, n_words, "train", **kw)
    nearest = [nearest_distance(g, t) if len(g) else np.empty(0) for g, t in zip(generated, train)]
    flat = np.concatenate(nearest)
    if not len(flat):
        raise ValueError("copy rate needs at least one generated setting")
    return {
        "rate": float(np.mean(flat <= threshold_db)),
        "per_word": [
            float(np.mean(d <= threshold_db)) if len(d) else float("nan") for d in nearest
        ],
        "nearest_median_db": float(np.median(flat)),
        "threshold_db": float(threshold_db),
    }


def word_mean_responses(
    settings_NxP,
    word_ids_N,
    n_words: int,
    *,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> np.ndarray:
    """Each word's mean dB response, ``[W, F]``; every word needs a setting."""
    groups = _grouped(settings_NxP, word_ids_N, n_words, "settings", layout, sample_rate)
    return np.stack([g.mean(axis=0) for g in groups])


def _checked_blends(blend_settings_BxVxP, pairs_Bx2, n_words: int, layout: EQLayout):
    """``(settings [B, V, P], pairs [B, 2])`` of B blends of word pairs, checked: settings in
    range, one integer ``[a, b]`` pair of word ids per blend."""
    blends = check_settings(blend_settings_BxVxP, layout, "blend settings", min_ndim=3)
    pairs = np.asarray(pairs_Bx2)
    if pairs.shape != (len(blends), 2) or not np.issubdtype(pairs.dtype, np.integer):
        raise ValueError(f"pairs must be integer [{len(blends)}, 2], got {pairs.shape}")
    check_word_ids(pairs.reshape(-1), pairs.size, n_words, "pairs")
    return blends, pairs


def blend_fidelity(
    blend_settings_PxVxP,
    pairs_Px2,
    heldout_KxP,
    heldout_ids_K,
    n_words: int,
    *,
    weight: float = BLEND_WEIGHT,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> dict:
    """Blend fidelity of "w·a + (1−w)·b" (w = 0.7 by default) for P ordered word pairs.

    Per pair: RMS dB between the mean response of the blend's V variations and
    ``w·m_a + (1−w)·m_b`` (m: the words' mean held-out responses), ÷ RMS dB between m_a and
    m_b. Returns ``{"worst", "worst_pair" [a, b], "mean", "per_pair" [P]}``.
    """
    blends, pairs = _checked_blends(blend_settings_PxVxP, pairs_Px2, n_words, layout)
    if not 0.0 <= float(weight) <= 1.0:
        raise ValueError(f"weight must lie in [0, 1], got {weight}")
    means_WxF = word_mean_responses(
        heldout_KxP, heldout_ids_K, n_words, layout=layout, sample_rate=sample_rate
    )
    blend_means_PxF = responses_db(blends, layout=layout, sample_rate=sample_rate).mean(axis=1)
    first, second = means_WxF[pairs[:, 0]], means_WxF[pairs[:, 1]]
    target_PxF = weight * first + (1.0 - weight) * second
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = rms(blend_means_PxF, target_PxF) / rms(first, second)
    worst = int(np.nanargmax(ratios))
    return {
        "worst": float(ratios[worst]),
        "worst_pair": pairs[worst].tolist(),
        "mean": float(np.nanmean(ratios)),
        "per_pair": ratios.tolist(),
    }


def word_spreads(
    settings_NxP,
    word_ids_N,
    n_words: int,
    *,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> np.ndarray:
    """Each word's own spread, ``[W]`` dB: the mean RMS dB of its settings' responses from
    their mean response; every word needs a setting."""
    groups = _grouped(settings_NxP, word_ids_N, n_words, "settings", layout, sample_rate)
    return np.array([rms(g, g.mean(axis=0)).mean() for g in groups])


def separated_pairs(
    means_WxF, spreads_W, pairs_Px2, *, separation: float = PER_SETTING_SEPARATION
) -> np.ndarray:
    """Which word pairs ``[P]`` (bool) have mean responses farther apart (RMS dB) than
    ``separation`` × the larger of the two words' spreads."""
    pairs = np.asarray(pairs_Px2)
    apart = rms(means_WxF[pairs[:, 0]], means_WxF[pairs[:, 1]])
    return apart > separation * np.maximum(spreads_W[pairs[:, 0]], spreads_W[pairs[:, 1]])


def blend_per_setting(
    blend_settings_BxVxP,
    pairs_Bx2,
    weights_B,
    word_settings_NxP,
    word_ids_N,
    heldout_KxP,
    heldout_ids_K,
    n_words: int,
    *,
    separation: float = PER_SETTING_SEPARATION,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> dict:
    """Blend per setting of B blends "w·a + (1−w)·b" (``pairs_Bx2`` ``[a, b]``, ``weights_B``
    w), each with V variations.

    Per blend whose words are separated (:func:`separated_pairs`; the spreads are those of
    ``word_settings_NxP``, each word's own variations): the share of its variations whose
    response is nearer (RMS dB) to m_a or m_b than to ``w·m_a + (1−w)·m_b`` (m: the words' mean
    held-out responses). Returns ``{"worst" (NaN without a counted blend), "worst_blend"
    (index or -1), "mean", "counted", "per_blend" [B] (NaN where not counted)}``.
    """
    blends, pairs = _checked_blends(blend_settings_BxVxP, pairs_Bx2, n_words, layout)
    weights = np.asarray(weights_B, np.float64)
    if weights.shape != (len(blends),) or not np.all((weights >= 0) & (weights <= 1)):
        raise ValueError(f"weights must be [{len(blends)}] in [0, 1], got {weights}")
    kw = dict(layout=layout, sample_rate=sample_rate)
    means_WxF = word_mean_responses(heldout_KxP, heldout_ids_K, n_words, **kw)
    spreads_W = word_spreads(word_settings_NxP, word_ids_N, n_words, **kw)
    counted = separated_pairs(means_WxF, spreads_W, pairs, separation=separation)
    shares = np.full(len(blends), np.nan)
    for index in np.flatnonzero(counted):
        responses_VxF = responses_db(blends[index], **kw)
        first, second = means_WxF[pairs[index, 0]], means_WxF[pairs[index, 1]]
        mix = weights[index] * first + (1.0 - weights[index]) * second
        nearest_word = np.minimum(rms(responses_VxF, first), rms(responses_VxF, second))
        shares[index] = np.mean(nearest_word < rms(responses_VxF, mix))
    worst = int(np.nanargmax(shares)) if counted.any() else -1
    return {
        "worst": float(shares[worst]) if counted.any() else float("nan"),
        "worst_blend": worst,
        "mean": float(np.nanmean(shares)) if counted.any() else float("nan"),
        "counted": int(counted.sum()),
        "per_blend": shares.tolist(),
    }


def mean_response_error(
    generated_NxP,
    generated_ids_N,
    train_MxP,
    train_ids_M,
    heldout_KxP,
    heldout_ids_K,
    n_words: int,
    *,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> dict:
    """Per word, RMS dB between the mean generated response and the mean held-out response,
    beside the sampling noise of that difference.

    ``noise_db`` is the figure's expected size, root-mean-square over draws, for a generator
    that reproduces the distribution of its training settings without bias: the training
    mean's, the generated mean's and the held-out mean's sampling errors together,
    ``sqrt(mean_f σ²_f · (1/n_train + 1/n_gen + 1/n_heldout))``, σ²_f the word's response
    variance at grid point f (ddof 1, training and held-out settings pooled). No model fitted
    to the training settings can expect to do better. ``train_vs_heldout_db`` is one
    realisation of the data's own part: the training mean against the held-out mean.
    ``ratio`` = error ÷ noise (goal: ≤ 2).

    Returns:
      ``{"per_word_db" [W], "noise_db" [W], "train_vs_heldout_db" [W], "ratio" [W],
      "worst_ratio", "worst_word"}``.
    """
    kw = dict(layout=layout, sample_rate=sample_rate)
    generated = _grouped(generated_NxP, generated_ids_N, n_words, "generated", **kw)
    train = _grouped(train_MxP, train_ids_M, n_words, "train", **kw)
    heldout = _grouped(heldout_KxP, heldout_ids_K, n_words, "heldout", minimum=2, **kw)
    error = np.array([rms(g.mean(axis=0), h.mean(axis=0)) for g, h in zip(generated, heldout)])
    realised = np.array([rms(t.mean(axis=0), h.mean(axis=0)) for t, h in zip(train, heldout)])
    noise = np.array(
        [
            np.sqrt(
                np.mean(np.concatenate([t, h]).var(axis=0, ddof=1))
                * (1.0 / len(t) + 1.0 / len(g) + 1.0 / len(h))
            )
            for g, t, h in zip(generated, train, heldout)
        ]
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = error / noise
    worst = int(np.nanargmax(ratio))
    return {
        "per_word_db": error.tolist(),
        "noise_db": noise.tolist(),
        "train_vs_heldout_db": realised.tolist(),
        "ratio": ratio.tolist(),
        "worst_ratio": float(ratio[worst]),
        "worst_word": worst,
    }


# ---------------------------------------------------------------- reference generators


def unit_gaussian_settings(
    train_MxP,
    train_ids_M,
    n_words: int,
    per_word: int,
    *,
    seed: int = 0,
    layout: EQLayout = DEFAULT_LAYOUT,
) -> np.ndarray:
    """The trivial reference generator: per word, a Gaussian (mean and full covariance,
    ddof 1) fitted to the training settings in the unit space (:func:`paramspace.normalize`:
    gains linear, frequency and Q logarithmic), sampled, clipped to [-1, 1] and mapped back.

    Returns:
      ``[W, per_word, n_params]`` physical float32 settings, in range.
    """
    settings = check_settings(train_MxP, layout, "train")
    ids = check_word_ids(train_ids_M, len(settings), n_words, "train word ids")
    unit = np.asarray(paramspace.normalize(settings, layout), dtype=np.float64)
    rng = np.random.default_rng(seed)
    out = np.empty((n_words, int(per_word), layout.n_params), dtype=np.float32)
    for w in range(n_words):
        rows = unit[ids == w]
        if len(rows) < 2:
            raise ValueError(
                f"word id {w} needs >= 2 training settings for a Gaussian, got {len(rows)}"
            )
        draws = rng.multivariate_normal(
            rows.mean(axis=0), np.cov(rows.T, ddof=1), size=int(per_word), method="eigh"
        )
        physical = paramspace.denormalize(np.clip(draws, -1.0, 1.0).astype(np.float32), layout)
        out[w] = np.asarray(paramspace.clip(physical, layout))
    return out


# ---------------------------------------------------------------- figures of a generated set


def generated_figures(
    generated_NxP,
    generated_ids_N,
    train,
    heldout,
    *,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> dict:
    """Distribution match, copy rate and the mean-response figure of one generated set.

    Args:
      generated_NxP, generated_ids_N: generated physical settings and the word of each
        (every word ≥ 2 settings).
      train, heldout: the training and held-out EQDatasets (same vocabulary and layout).
    Returns:
      Flat figures ``distribution_match_mean``, ``distribution_match_worst``, ``copy_rate``,
      ``mean_response_noise_ratio_worst`` and ``"details"``: per-word values keyed by word.
    """
    vocabulary, layout = tuple(heldout.vocabulary), heldout.layout
    if tuple(train.vocabulary) != vocabulary or train.layout != layout:
        raise ValueError(
            f"training data (words {train.vocabulary}) must share the held-out "
            f"data's vocabulary {vocabulary} and layout"
        )
    n_words = len(vocabulary)
    kw = dict(layout=layout, sample_rate=sample_rate)
    sets = (generated_NxP, generated_ids_N, train.settings, train.word_ids)
    match = distribution_match(*sets, heldout.settings, heldout.word_ids, n_words, **kw)
    copies = copy_rate(*sets, n_words, **kw)
    means = mean_response_error(*sets, heldout.settings, heldout.word_ids, n_words, **kw)

    def per_word(values):
        return {word: float(v) for word, v in zip(vocabulary, values)}

    return {
        "distribution_match_mean": match["mean"],
        "distribution_match_worst": match["worst"],
        "copy_rate": copies["rate"],
        "mean_response_noise_ratio_worst": means["worst_ratio"],
        "details": {
            "distribution_match_per_word": per_word(match["per_word"]),
            "distribution_match_worst_word": vocabulary[match["worst_word"]],
            "energy_distance_generated_db": per_word(match["energy_generated"]),
            "energy_distance_data_db": per_word(match["energy_data"]),
            "copy_rate_per_word": per_word(copies["per_word"]),
            "copy_nearest_median_db": copies["nearest_median_db"],
            "mean_response_db": per_word(means["per_word_db"]),
            "mean_response_noise_db": per_word(means["noise_db"]),
            "mean_response_train_vs_heldout_db": per_word(means["train_vs_heldout_db"]),
            "mean_response_worst_word": vocabulary[means["worst_word"]],
        },
    }


def blend_variations(
    system, first: str, second: str, variations: int, *, weight: float = BLEND_WEIGHT, seed: int = 0
) -> tuple[np.ndarray, str]:
    """``variations`` settings for the blend ``weight·first + (1−weight)·second``: ``[V, 15]``.

    Asks the facade for the blend (``{first: weight, second: 1 − weight}``). A system without
    blends (its generate raises TypeError for a mapping, as the lite baseline does) gets the
    mixture instead: ``round(weight·V)`` variations of ``first`` and the rest of ``second``.
    Returns ``(settings, how)`` with ``how`` "blend" or "mixture".
    """
    try:
        settings = system.generate_eq_from_semantic(
            {first: float(weight), second: 1.0 - float(weight)},
            variations=int(variations),
            seed=seed,
            as_array=True,
        )
        return np.asarray(settings), "blend"
    except TypeError:
        n_first = int(round(float(weight) * int(variations)))
        parts = [
            np.asarray(
                system.generate_eq_from_semantic(word, variations=count, seed=seed, as_array=True)
            )
            for word, count in ((first, n_first), (second, int(variations) - n_first))
            if count > 0
        ]
        return np.concatenate(parts), "mixture"


def blend_name(first: str, second: str, weight: float = BLEND_WEIGHT) -> str:
    """A blend as the compound syntax writes it: ``"0.7 warm + 0.3 bright"``."""
    return f"{weight:g} {first} + {1.0 - weight:g} {second}"


def system_blend_fidelity(
    system,
    heldout,
    *,
    variations: int = 100,
    seed: int = 0,
    weight: float = BLEND_WEIGHT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> dict:
    """Blend fidelity of a system over every ordered word pair (a, b), a ≠ b.

    Returns ``{"blend_fidelity_worst", "blend_fidelity_mean", "details": {"worst_pair",
    "per_pair" {name: ratio}, "how" "blend"|"mixture", "weight"}}``, pairs named as
    :func:`blend_name` writes them.
    """
    vocabulary = tuple(heldout.vocabulary)
    pairs = np.array(
        [(a, b) for a in range(len(vocabulary)) for b in range(len(vocabulary)) if a != b],
        dtype=np.int64,
    ).reshape(-1, 2)
    drawn = [
        blend_variations(
            system, vocabulary[a], vocabulary[b], variations, weight=weight, seed=seed + index
        )
        for index, (a, b) in enumerate(pairs)
    ]
    out = blend_fidelity(
        np.stack([s for s, _ in drawn]),
        pairs,
        heldout.settings,
        heldout.word_ids,
        len(vocabulary),
        weight=weight,
        layout=heldout.layout,
        sample_rate=sample_rate,
    )
    names = [blend_name(vocabulary[a], vocabulary[b], weight) for a, b in pairs]
    a, b = out["worst_pair"]
    return {
        "blend_fidelity_worst": out["worst"],
        "blend_fidelity_mean": out["mean"],
        "details": {
            "worst_pair": blend_name(vocabulary[a], vocabulary[b], weight),
            "per_pair": dict(zip(names, out["per_pair"])),
            "how": drawn[0][1],
            "weight": float(weight),
        },
    }


def per_setting_blends(n_words: int) -> tuple[np.ndarray, np.ndarray]:
    """The blends blend per setting judges: ``(pairs [B, 2], weights [B])``, 50/50 for every
    unordered word pair and 60/40 for every ordered one."""
    rows = [(a, b, 0.5) for a in range(n_words) for b in range(a + 1, n_words)]
    rows += [(a, b, 0.6) for a in range(n_words) for b in range(n_words) if a != b]
    pairs = np.array([(a, b) for a, b, _ in rows], dtype=np.int64).reshape(-1, 2)
    return pairs, np.array([w for _, _, w in rows], dtype=np.float64)


def system_blend_per_setting(
    system,
    heldout,
    word_settings_NxP,
    word_ids_N,
    *,
    variations: int = 100,
    seed: int = 0,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> dict:
    """Blend per setting of a system (:func:`blend_per_setting`) over
    :func:`per_setting_blends`; only the blends of separated pairs are generated, each with
    ``variations`` settings, and ``word_settings_NxP`` are the system's own word variations.

    Returns ``{"blend_per_setting_worst", "blend_per_setting_mean", "details": {"worst_blend",
    "per_blend" {name: share}, "counted", "how", "separation"}}``.
    """
    vocabulary, layout = tuple(heldout.vocabulary), heldout.layout
    kw = dict(layout=layout, sample_rate=sample_rate)
    pairs, weights = per_setting_blends(len(vocabulary))
    means_WxF = word_mean_responses(heldout.settings, heldout.word_ids, len(vocabulary), **kw)
    spreads_W = word_spreads(word_settings_NxP, word_ids_N, len(vocabulary), **kw)
    keep = separated_pairs(means_WxF, spreads_W, pairs)
    pairs, weights = pairs[keep], weights[keep]
    drawn = [
        blend_variations(system, vocabulary[a], vocabulary[b], variations, weight=w, seed=seed + i)
        for i, ((a, b), w) in enumerate(zip(pairs, weights))
    ]
    settings = np.stack([s for s, _ in drawn]) if drawn else np.empty((0, 1, layout.n_params))
    out = blend_per_setting(
        settings,
        pairs,
        weights,
        word_settings_NxP,
        word_ids_N,
        heldout.settings,
        heldout.word_ids,
        len(vocabulary),
        **kw,
    )
    names = [blend_name(vocabulary[a], vocabulary[b], w) for (a, b), w in zip(pairs, weights)]
    return {
        "blend_per_setting_worst": out["worst"],
        "blend_per_setting_mean": out["mean"],
        "details": {
            "worst_blend": names[out["worst_blend"]] if out["counted"] else None,
            "per_blend": dict(zip(names, out["per_blend"])),
            "counted": out["counted"],
            "how": drawn[0][1] if drawn else None,
            "separation": PER_SETTING_SEPARATION,
        },
    }
