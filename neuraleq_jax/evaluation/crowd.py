"""Evaluation of crowd-vocabulary models (``--config audealize`` / ``--config crowd``).

Figures (crowd-curve fidelity, on words the model was trained on):

- per source, per word: Pearson r between the mean dB response of the word's generated
  settings (strength 1) at the source's frequencies and the source's curve (Audealize: the
  word's curve at its 40 bands; SAFE-DB: the mean response of the word's SAFE settings at the
  same 40 frequencies), and the RMS dB error ÷ the curve's own RMS; medians and the worst words;
- the crowds' own disagreement on shared words (r between SAFE's and Audealize's curves);
- morphs between crowd words (a fixed random sample of pairs): smoothness and end points;
- the word map's agreement with Audealize's own map: Spearman correlation of pairwise distances.
"""

from __future__ import annotations

import numpy as np

from neuraleq_jax.data import audealize, vocabulary
from neuraleq_jax.data.safedb import load_safe_db
from neuraleq_jax.evaluation import evaluator
from neuraleq_jax.model import response

GOALS = (  # (key, label, kind, bound), judged like evaluator.check_goals
    ("audealize_fidelity_r_median", "crowd-curve fidelity r (median)", ">=", 0.95),
    ("audealize_fidelity_rel_median", "crowd-curve relative error (median)", "<=", 0.25),
    ("morph_smoothness_max", "morph smoothness (worst pair)", "<=", 1.5),
    ("morph_endpoint_max_db", "morph end points (worst, dB)", "<=", 0.5),
)


def curve_fidelity(predicted_WxF, curves_WxF) -> tuple[np.ndarray, np.ndarray]:
    """Per word: Pearson r of prediction and curve, and RMS error ÷ the curve's RMS (``[W]``)."""
    p = np.asarray(predicted_WxF, np.float64)
    c = np.asarray(curves_WxF, np.float64)
    pc, cc = p - p.mean(1, keepdims=True), c - c.mean(1, keepdims=True)
    r = (pc * cc).sum(1) / np.maximum(np.sqrt((pc**2).sum(1) * (cc**2).sum(1)), 1e-12)
    relative = np.sqrt(((p - c) ** 2).mean(1)) / np.maximum(np.sqrt((c**2).mean(1)), 1e-12)
    return r, relative


def mean_generated_responses(
    system, words, freqs_F, *, n_variations: int = 64, seed: int = 0
) -> np.ndarray:
    """Mean dB response at ``freqs`` of ``n_variations`` generated settings per word, ``[W, F]``."""
    out = []
    for index, word in enumerate(words):
        settings = system.generate_eq_from_semantic(
            word, variations=n_variations, seed=seed + index, as_array=True
        )
        db = response.magnitude_response_db(np.asarray(settings), freqs_F, layout=system.layout)
        out.append(np.asarray(db, np.float64).mean(0))
    return np.stack(out)


def _summary(words, r, relative, n_worst: int = 10) -> dict:
    worst = np.argsort(r, kind="stable")[:n_worst]
    return {
        "words": len(words),
        "r_median": float(np.median(r)),
        "r_min": float(r.min()),
        "rel_median": float(np.median(relative)),
        "rel_max": float(relative.max()),
        "worst": [{"word": words[i], "r": float(r[i]), "rel": float(relative[i])} for i in worst],
    }


def source_curves(config: dict) -> dict[str, tuple[list[str], np.ndarray]]:
    """Each source's curves at Audealize's frequencies: ``{name: (words, curves [W, 40])}``."""
    data = config["data"]
    read = audealize.load_audealize(data["path"], on_malformed="skip")
    out = {"audealize": (list(read.words), read.gains_db)}
    if data["dataset"] == "crowd":
        safe, _ = load_safe_db(None, layout="spec", min_examples=data["min_examples"])
        db = np.asarray(
            response.magnitude_response_db(
                safe.settings, audealize.AUDEALIZE_FREQS, layout=safe.layout
            ),
            np.float64,
        )
        means = np.stack([db[safe.word_ids == w].mean(0) for w in range(len(safe.vocabulary))])
        out["safe"] = (list(safe.vocabulary), means)
    return out


def crowd_disagreement(curves: dict) -> dict:
    """r between SAFE's and Audealize's curves of the words in both (the crowds' agreement)."""
    if "safe" not in curves:
        return {}
    a_words, a_curves = curves["audealize"]
    s_words, s_curves = curves["safe"]
    shared = [w for w in s_words if w in a_words]
    if not shared:
        return {}
    r, _ = curve_fidelity(
        np.stack([s_curves[s_words.index(w)] for w in shared]),
        np.stack([a_curves[a_words.index(w)] for w in shared]),
    )
    return {w: float(v) for w, v in zip(shared, r)}


def morph_figures(system, *, n_pairs: int = 40, steps: int = 33, seed: int = 0) -> dict:
    """Smoothness and end points of morphs between ``n_pairs`` random word pairs (fixed seed)."""
    words = system.vocabulary
    rng = np.random.default_rng(seed)
    pairs = {tuple(sorted(rng.choice(len(words), 2, replace=False))) for _ in range(n_pairs)}
    pairs = np.array(sorted(pairs), np.int64)
    paths = np.stack(
        [
            np.asarray(system.morph_between_terms(words[a], words[b], steps=steps, as_array=True))
            for a, b in pairs
        ]
    )
    smooth = evaluator.morph_smoothness(paths, layout=system.layout)
    ends = evaluator.morph_endpoint_error(
        paths, pairs, system.centre_settings(), layout=system.layout
    )
    worst = int(np.argmax(smooth))
    return {
        "morph_pairs": int(len(pairs)),
        "morph_smoothness_max": float(smooth.max()),
        "morph_smoothness_median": float(np.median(smooth)),
        "morph_endpoint_max_db": float(np.max(ends)),
        "worst_morph": f"{words[pairs[worst, 0]]}->{words[pairs[worst, 1]]}",
    }


def source_fidelity(system, curves: dict, *, n_variations: int = 64, seed: int = 0) -> dict:
    """:func:`_summary` of crowd-curve fidelity per source, for any system that generates."""
    out = {}
    for name, (words, target) in curves.items():
        known = [i for i, w in enumerate(words) if w in system.vocabulary]
        words = [words[i] for i in known]
        predicted = mean_generated_responses(
            system, words, audealize.AUDEALIZE_FREQS, n_variations=n_variations, seed=seed
        )
        out[name] = _summary(words, *curve_fidelity(predicted, target[known]))
    return out


def evaluate_crowd(
    system, config: dict, *, n_variations: int = 64, steps: int = 33, seed: int = 0, baseline=None
) -> dict:
    """Every crowd figure for a trained system and its training config (a dict); with a fitted
    ``baseline`` (the lite baseline), its per-source fidelity too (``baseline_sources``)."""
    curves = source_curves(config)
    figures: dict = {
        "sources": source_fidelity(system, curves, n_variations=n_variations, seed=seed)
    }
    if baseline is not None:
        figures["baseline_sources"] = source_fidelity(
            baseline, curves, n_variations=n_variations, seed=seed
        )
    adz = figures["sources"]["audealize"]
    figures["audealize_fidelity_r_median"] = adz["r_median"]
    figures["audealize_fidelity_rel_median"] = adz["rel_median"]
    figures["crowd_disagreement_r"] = crowd_disagreement(curves)
    figures.update(morph_figures(system, steps=steps, seed=seed))
    read = audealize.load_audealize(config["data"]["path"], on_malformed="skip")
    index = [system.vocabulary.index(w) for w in read.words if w in system.vocabulary]
    mine = [i for i, w in enumerate(read.words) if w in system.vocabulary]
    figures["map_spearman"] = vocabulary.map_agreement(system.word_map()[index], read.map_xy[mine])
    figures["vocabulary_size"] = len(system.vocabulary)
    return figures


def check_goals(figures: dict) -> list[dict]:
    """Goal rows (as :func:`evaluator.check_goals`) for the crowd figures."""
    rows = []
    for key, label, kind, bound in GOALS:
        value = float(figures.get(key, float("nan")))
        margin = value - bound if kind == ">=" else bound - value
        rows.append(
            {
                "key": key,
                "label": label,
                "value": value,
                "goal": f"{'≥' if kind == '>=' else '≤'} {bound:g}",
                "passed": bool(np.isfinite(margin) and margin >= 0),
                "margin": float(margin),
            }
        )
    return rows


def _source_rows(model: dict) -> list[str]:
    """The per-source fidelity rows (model, then lite baseline), the note on the baseline and
    each source's worst 10 words."""
    lines = []
    for system, key in (("model", "sources"), ("lite baseline", "baseline_sources")):
        for name, s in (model.get(key) or {}).items():
            lines.append(
                f"| {name} ({system}) | {s['words']} | {s['r_median']:.3f} | "
                f"{s['r_min']:.3f} | {s['rel_median']:.3f} | {s['rel_max']:.3f} |"
            )
    if model.get("baseline_sources"):
        lines += [
            "",
            "The lite baseline decodes a kNN average of the word's own training "
            "settings (variations around the fitted curve), so it reproduces each curve "
            "almost by construction; the model goes through its latent space and word "
            "model, which is what also gives it morphs, blends and exploration.",
        ]
    for name, s in model["sources"].items():
        lines += [
            "",
            f"Worst 10 words ({name}): "
            + ", ".join(f"{w['word']} (r {w['r']:.3f}, rel {w['rel']:.2f})" for w in s["worst"]),
        ]
    return lines


def render_report(metrics: dict) -> str:
    """Markdown report of a crowd evaluation (``metrics`` as written to metrics.json)."""
    setup, model = metrics["setup"], metrics["model"]
    lines = [
        f"# neuraleq_jax crowd evaluation: {setup['config_name']}",
        "",
        f"- date: {setup['date']}",
        f"- machine: {setup['machine']}",
        f"- data: {setup['data']}",
        f"- vocabulary: {model['vocabulary_size']} words",
        f"- {setup['n_variations']} generated settings per word at strength 1; morphs of "
        f"{setup['steps']} steps between {model['morph_pairs']} random word pairs",
        "",
        "## Goals",
        "",
        "| figure | value | goal | verdict |",
        "| --- | --- | --- | --- |",
    ]
    for row in metrics["goals"]["model"]:
        verdict = "pass" if row["passed"] else "**miss**"
        lines.append(f"| {row['label']} | {row['value']:.3f} | {row['goal']} | {verdict} |")
    lines += [
        "",
        "## Crowd-curve fidelity per source",
        "",
        "| source | words | median r | min r | median rel. error | max rel. error |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += _source_rows(model)
    disagreement = model.get("crowd_disagreement_r") or {}
    if disagreement:
        lines += [
            "",
            "The crowds disagree on shared words (r between SAFE-DB's mean curve and "
            "Audealize's): "
            + ", ".join(f"{w} {r:.2f}" for w, r in disagreement.items())
            + ". A fused word sits between its sources, so its fidelity to each is lower.",
        ]
    lines += [
        "",
        f"Word map vs Audealize's own map: Spearman correlation of pairwise distances "
        f"{model['map_spearman']:.3f}.",
        f"Morphs: smoothness worst {model['morph_smoothness_max']:.3f} (median "
        f"{model['morph_smoothness_median']:.3f}, worst pair {model['worst_morph']}), "
        f"end points worst {model['morph_endpoint_max_db']:.3f} dB.",
    ]
    return "\n".join(lines) + "\n"
