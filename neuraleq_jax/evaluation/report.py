"""The Markdown quality report: the model and the lite baseline side by side, against the goals.

:func:`render_report` turns the ``metrics.json`` dict written by :mod:`neuraleq_jax.evaluate`
into Markdown; :func:`write_report` writes it atomically.
"""

from __future__ import annotations

import math
from pathlib import Path

from neuraleq_jax.fileio import atomic_write_text
from neuraleq_jax.metrics import goals

# Further figures shown under the goal table: (key, label, format).
EXTRA_FIGURES = (
    ("response_error_median_db", "response error (median, dB)", "{:.3f}"),
    ("word_accuracy_data", "word accuracy of the held-out data itself", "{:.3f}"),
    ("calibration_min", "variation calibration (min)", "{:.3f}"),
    ("calibration_max", "variation calibration (max)", "{:.3f}"),
    ("gain_in_box_rate", "gains in widened box (ignoring freq/Q)", "{:.1%}"),
    ("freq_q_in_range_rate", "settings with every freq/Q in range", "{:.1%}"),
    ("morph_smoothness_median", "morph smoothness (median pair)", "{:.3f}"),
    ("morph_endpoint_mean_db", "morph end points (mean, dB)", "{:.3f}"),
    ("blend_fidelity_mean", "blend fidelity (mean pair)", "{:.3f}"),
    ("blend_per_setting_mean", "blend per setting (mean blend)", "{:.1%}"),
    ("all_in_range", "every returned setting in range", "{}"),
    ("explained_variance", "PCA explained variance (baseline)", "{:.1%}"),
)

_FORMATS = {
    "box_rate": "{:.1%}",
    "latent_silhouette": "{:.3f}",
    "word_accuracy": "{:.3f}",
    "copy_rate": "{:.1%}",
    "distribution_match_mean": "{:.2f}",
    "distribution_match_worst": "{:.2f}",
    "mean_response_noise_ratio_worst": "{:.2f}",
    "blend_per_setting_worst": "{:.1%}",
}
_TITLES = {"model": "model", "baseline": "lite baseline"}


def _fmt(key: str, value, default: str = "{:.3f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return _FORMATS.get(key, default).format(value)


def _verdict(row: dict | None) -> str:
    if row is None or not math.isfinite(row["margin"]):
        return "—"
    margin = _fmt(row["key"], abs(row["margin"]))
    return f"pass (+{margin})" if row["passed"] else f"**miss** (−{margin})"


def _goal_table(metrics: dict) -> list[str]:
    systems = [name for name in ("model", "baseline") if metrics.get(name)]
    rows = {name: {r["key"]: r for r in metrics["goals"].get(name, [])} for name in systems}
    titles = {"model": "model", "baseline": "lite baseline"}
    head = (
        "| figure | goal | "
        + " | ".join(f"{titles[s]} | {titles[s]} vs goal" for s in systems)
        + " |"
    )
    lines = [head, "|" + " --- |" * (2 + 2 * len(systems))]
    for key, label, _, _ in goals.GOALS:
        goal = next((rows[s][key]["goal"] for s in systems if key in rows[s]), "")
        cells = []
        for s in systems:
            cells += [_fmt(key, metrics[s].get(key)), _verdict(rows[s].get(key))]
        lines.append(f"| {label} | {goal} | " + " | ".join(cells) + " |")
    return lines


def _extra_table(metrics: dict) -> list[str]:
    systems = [name for name in ("model", "baseline") if metrics.get(name)]
    lines = [
        "| figure | "
        + " | ".join("model" if s == "model" else "lite baseline" for s in systems)
        + " |",
        "|" + " --- |" * (1 + len(systems)),
    ]
    for key, label, fmt in EXTRA_FIGURES:
        values = [metrics[s].get(key) for s in systems]
        if all(v is None for v in values):
            continue
        lines.append(f"| {label} | " + " | ".join(_fmt(key, v, fmt) for v in values) + " |")
    return lines


def _generators(metrics: dict) -> list[tuple[str, str, dict, dict]]:
    """(title, short title, figures, per-word details) of every generated set with fidelity
    figures: the systems, the unit-space Gaussian, each system decoding its training latents."""
    rows = [
        (_TITLES[n], _TITLES[n], metrics[n], metrics[n]["details"]["fidelity"])
        for n in ("model", "baseline")
        if (metrics.get(n) or {}).get("distribution_match_mean") is not None
    ]
    gaussian = (metrics.get("references") or {}).get("unit_gaussian")
    if gaussian:
        rows.append(
            (
                "reference: per-word Gaussian in unit space, clipped to range",
                "Gaussian",
                gaussian,
                gaussian["details"],
            )
        )
    # the baseline's reconstruction is a PCA round trip, not a decoder of its latents
    for name in ("model",):
        decoded = ((metrics.get(name) or {}).get("details") or {}).get("decoded_training")
        if decoded:
            rows.append(
                (
                    f"reference: {_TITLES[name]} decoding its training latents",
                    f"{_TITLES[name]} decoded",
                    decoded,
                    decoded["details"],
                )
            )
    return rows


def _fidelity_section(metrics: dict) -> list[str]:
    generators = _generators(metrics)
    if not generators:
        return []
    lines = [
        "## Fidelity: generated variations against the held-out data",
        "",
        "Distribution match: energy distance (RMS dB) of generated vs held-out responses "
        "÷ that of the training vs held-out settings; sampling the data's own distribution "
        "scores 1. Mean response ÷ noise: RMS dB between the mean generated and mean "
        "held-out response ÷ its expected sampling noise (training, generated and "
        "held-out means together).",
        "",
        "| generator | distribution match (mean) | (worst word) | copy rate | "
        "mean response ÷ noise (worst) | word accuracy (data's own) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for title, _, figures, details in generators:
        lines.append(
            f"| {title} | {figures['distribution_match_mean']:.2f} | "
            f"{figures['distribution_match_worst']:.2f} "
            f"({details['distribution_match_worst_word']}) | {figures['copy_rate']:.1%} | "
            f"{figures['mean_response_noise_ratio_worst']:.2f} | "
            f"{_fmt('', figures.get('word_accuracy'))} "
            f"({_fmt('', figures.get('word_accuracy_data'))}) |"
        )
    return lines + _per_word_fidelity(generators) + _blend_lines(metrics) + [""]


def _per_word_fidelity(generators: list) -> list[str]:
    """The per-word table: each generator's distribution match, the systems' mean response
    errors, and the training mean's."""
    systems = [g for g in generators if g[0] in _TITLES.values()]
    lines = [
        "",
        "Per word: distribution match of each generator; mean generated response vs "
        "held-out mean, RMS dB (its sampling noise); the training mean vs the held-out "
        "mean, RMS dB.",
        "",
        "| word | "
        + " | ".join(short for _, short, _, _ in generators)
        + " | "
        + " | ".join(f"{short}: mean response dB" for _, short, _, _ in systems)
        + " | training mean (dB) |",
        "|" + " --- |" * (2 + len(generators) + len(systems)),
    ]
    for word in generators[0][3]["distribution_match_per_word"]:
        cells = [f"{d['distribution_match_per_word'][word]:.2f}" for *_, d in generators]
        cells += [
            f"{d['mean_response_db'][word]:.2f} ({d['mean_response_noise_db'][word]:.2f})"
            for *_, d in systems
        ]
        realised = generators[0][3]["mean_response_train_vs_heldout_db"][word]
        lines.append(f"| {word} | " + " | ".join(cells) + f" | {realised:.2f} |")
    return lines + [""]


def _blend_lines(metrics: dict) -> list[str]:
    """One line per system with blend fidelity: its worst pair and mean."""
    lines = []
    for name in ("model", "baseline"):
        blend = ((metrics.get(name) or {}).get("details") or {}).get("blend_fidelity")
        if blend:
            how = (
                "its own blends"
                if blend["how"] == "blend"
                else "a 70/30 mixture of single-word variations, as it has no blends"
            )
            lines.append(
                f"- Blend fidelity ({_TITLES[name]}, {how}): worst pair "
                f"{blend['worst_pair']}, {metrics[name]['blend_fidelity_worst']:.3f}; "
                f"mean over ordered pairs {metrics[name]['blend_fidelity_mean']:.3f}."
            )
    return lines + _per_setting_lines(metrics)


def _per_setting_lines(metrics: dict) -> list[str]:
    """One line per system with blend per setting: its worst blend, mean and blends counted."""
    lines = []
    for name in ("model", "baseline"):
        blend = ((metrics.get(name) or {}).get("details") or {}).get("blend_per_setting")
        if not blend:
            continue
        if not blend["counted"]:
            lines.append(f"- Blend per setting ({_TITLES[name]}): no word pair is separated.")
            continue
        how = "its own blends" if blend["how"] == "blend" else "a mixture, as it has no blends"
        lines.append(
            f"- Blend per setting ({_TITLES[name]}, {how}): share of single variations nearer "
            f"to one word's mean response than to the mix, worst blend {blend['worst_blend']} "
            f"{metrics[name]['blend_per_setting_worst']:.1%}; mean "
            f"{metrics[name]['blend_per_setting_mean']:.1%} over the {blend['counted']} "
            f"50/50 and 60/40 blends of pairs farther apart than {blend['separation']:g}× "
            f"the larger word's spread."
        )
    return lines


def _misses(metrics: dict) -> list[str]:
    lines = []
    for name, title in (("model", "Model"), ("baseline", "Lite baseline")):
        missed = [r for r in metrics["goals"].get(name, []) if not r["passed"]]
        if not metrics.get(name):
            continue
        if not missed:
            lines.append(f"- {title}: every goal met.")
            continue
        for row in missed:
            by = (
                "(not computed)"
                if not math.isfinite(row["margin"])
                else f"by {_fmt(row['key'], abs(row['margin']))}"
            )
            lines.append(
                f"- {title}: {row['label']} = {_fmt(row['key'], row['value'])}, "
                f"goal {row['goal']}, missed {by}."
            )
    return lines


def render_report(metrics: dict) -> str:
    """Markdown text of the report for a ``metrics.json`` dict."""
    setup = metrics.get("setup", {})
    lines = [
        f"# neuraleq_jax evaluation: {setup.get('config_name', 'run')}",
        "",
        f"- date: {setup.get('date', '?')}",
        f"- machine: {setup.get('machine', '?')}",
        f"- workdir: `{setup.get('workdir', '?')}`",
        f"- data: {setup.get('data', '?')}",
        f"- held-out split: {setup.get('split', '?')}",
        f"- fidelity figures (distribution match, mean response, blend fidelity) compare "
        f"with: {setup.get('fidelity_heldout', 'the held-out split')}",
        f"- evaluation seed {setup.get('seed', '?')}, {setup.get('n_variations', '?')} "
        f"generated settings per word, morphs of {setup.get('steps', '?')} steps for all "
        f"{setup.get('n_pairs', '?')} word pairs",
        f"- box rate boxes: {setup.get('boxes', '?')}, widened by 0.5 dB",
        f"- lite baseline: {setup.get('baseline', '?')}",
        "",
    ]
    if metrics.get("model_error"):
        lines += [f"> The model was not evaluated: {metrics['model_error']}", ""]
    lines += ["## Figures against the goals", ""] + _goal_table(metrics)
    lines += ["", "Margins: how far inside (+) or outside (−) the goal the value lies.", ""]
    lines += _fidelity_section(metrics)
    lines += ["## Further figures", ""] + _extra_table(metrics)
    for name, title in (("model", "model"), ("baseline", "lite baseline")):
        details = (metrics.get(name) or {}).get("details")
        if details:
            lines += ["", f"Worst morph pair ({title}): {details['worst_morph']}."]
    lines += ["", "## Missed goals", ""] + _misses(metrics)
    notes = metrics.get("notes") or []
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    plots = metrics.get("plots") or []
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def write_report(metrics: dict, path: str | Path) -> Path:
    """Write :func:`render_report` of ``metrics`` to ``path`` atomically; returns the path."""
    return atomic_write_text(path, render_report(metrics))
