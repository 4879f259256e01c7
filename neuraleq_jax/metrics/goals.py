"""The quality goals and the judging of figures against them."""

from __future__ import annotations

import numpy as np

# (figure key, label, kind, bound): kind ">=" / "<=" against a number, "in" a closed range,
# ">=key" against another figure minus a slack: (key, slack). Word accuracy passes at ≥ the
# data's own − 0.03.
GOALS = (
    ("latent_silhouette", "latent silhouette", ">=", 0.85),
    ("box_rate", "box rate", ">=", 0.98),
    ("response_error_mean_db", "response error (mean, dB)", "<=", 0.5),
    ("word_accuracy", "word accuracy", ">=key", ("word_accuracy_data", 0.03)),
    ("calibration_median", "variation calibration (median)", "in", (0.7, 1.3)),
    ("morph_smoothness_max", "morph smoothness (worst pair)", "<=", 1.5),
    ("morph_endpoint_max_db", "morph end points (worst, dB)", "<=", 0.5),
    ("distribution_match_mean", "distribution match (mean)", "<=", 2.0),
    ("distribution_match_worst", "distribution match (worst word)", "<=", 3.0),
    ("mean_response_noise_ratio_worst", "mean response error ÷ noise (worst)", "<=", 2.0),
    ("copy_rate", "copy rate", "<=", 0.05),
    ("blend_fidelity_worst", "blend fidelity (worst pair)", "<=", 0.15),
    ("blend_per_setting_worst", "blend per setting (worst blend)", "<=", 0.25),
)
# On real data (SAFE-DB held-out contributors) every word's distribution match must be ≤ 2.
REAL_DATA_BOUNDS = {"distribution_match_worst": 2.0}


def check_goals(figures: dict, *, real_data: bool = False) -> list[dict]:
    """Judge figures against the goals (synthetic-set ones; ``real_data`` applies
    :data:`REAL_DATA_BOUNDS` instead where they differ).

    Returns one row per goal: ``{"key", "label", "value", "goal" (text), "passed",
    "margin"}``; margin > 0 is how far inside the goal the value is, < 0 how far it misses.
    A figure that is missing or NaN is reported with ``passed`` False and margin NaN.
    """
    rows = []
    for key, label, kind, bound in GOALS:
        if real_data:
            bound = REAL_DATA_BOUNDS.get(key, bound)
        value = figures.get(key, float("nan"))
        value = float("nan") if value is None else float(value)
        if kind == ">=":
            goal, margin = f"≥ {bound:g}", value - bound
        elif kind == "<=":
            goal, margin = f"≤ {bound:g}", bound - value
        elif kind == "in":
            goal, margin = f"{bound[0]:g} – {bound[1]:g}", min(value - bound[0], bound[1] - value)
        else:
            ref_key, slack = bound
            ref = figures.get(ref_key)
            ref = float("nan") if ref is None else float(ref)
            goal, margin = f"≥ data's own − {slack:g} ({ref - slack:.3f})", value - (ref - slack)
        passed = bool(np.isfinite(margin) and margin >= 0)
        rows.append(
            {
                "key": key,
                "label": label,
                "value": value,
                "goal": goal,
                "passed": passed,
                "margin": float(margin),
            }
        )
    return rows
