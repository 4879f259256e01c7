"""Evaluate a trained workdir against SPEC §6, beside the lite baseline.

    python -m neuraleq_jax.evaluate --workdir runs/synthetic

Reads ``W/config.json`` (written by ``python -m neuraleq_jax.train``), rebuilds the same data
set and split, loads the model with ``NeuralEQMorphingSystem.load(W)``, fits the lite baseline
on the same training part, computes every figure for both on the held-out part, and writes
``metrics.json``, ``report.md`` and PNG plots (when matplotlib is installed) into W (or
``--out DIR``, for a workdir that is read-only; checked before anything is computed).
``--baseline-only`` evaluates the baseline alone (no trained model needed).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from neuraleq_jax import evaluation, fidelity, report
from neuraleq_jax.baseline import LiteBaseline
from neuraleq_jax.workdir import check_writable

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
PLOTS_DIR = "plots"


# ------------------------------------------------------------------ data and split


def read_config(workdir: str | Path) -> dict:
    """The JSON config a training run saved in ``workdir`` (a plain dict)."""
    path = Path(workdir) / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no {CONFIG_FILE} in {workdir}: evaluate needs a workdir "
            f"written by `python -m neuraleq_jax.train --workdir W`"
        ) from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(config, Mapping):
        raise ValueError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return dict(config)


def split_from_config(config: Mapping):
    """Rebuild ``(train, heldout, description, split)`` exactly as training split the data.

    Uses the training command's own :func:`neuraleq_jax.train.build_datasets`, so the held-out
    part (the last of ``data.split_fractions``: test, or held-out contributors for real data)
    is the one training never saw.
    """
    from neuraleq_jax import config as config_lib
    from neuraleq_jax.train import build_datasets

    experiment = config_lib.from_dict(config)
    data = experiment.data
    parts = [p for p in build_datasets(data) if p is not None]
    train, heldout = parts[0], parts[-1]
    if data.dataset == "synthetic":
        description = (
            f"synthetic, {data.per_word} per word (data seed {data.data_seed}), "
            f"{sum(len(p) for p in parts)} settings"
        )
    else:
        words = ", ".join(f"{w} {c}" for w, c in heldout.counts().items())
        description = (
            f"{data.dataset} ({data.path or 'SAFE-DB in ../shared'}), words "
            f"{', '.join(train.vocabulary)}, layout {data.layout}"
        )
        description += f"; held-out per word: {words}"
    grouped = train.contributors is not None
    kind = "contributor-grouped" if grouped else "stratified"
    split = (
        f"{kind} {'/'.join(f'{f:g}' for f in data.split_fractions)} (seed "
        f"{data.split_seed}); train {len(train)}, held-out {len(heldout)} settings"
    )
    if grouped:
        split += (
            f" from {len(set(heldout.contributors))} held-out contributors "
            f"(none of them in training)"
        )
    return train, heldout, description, split


FIDELITY_PER_WORD = 70
# the fresh synthetic draw's data seed is the training data seed plus this (never equal to it)
FRESH_SEED_OFFSET = 1


def fidelity_heldout_from_config(config: Mapping, heldout, per_word: int = FIDELITY_PER_WORD):
    """The held-out settings the fidelity figures compare with, and a line saying which.

    Real data: the held-out split (held-out contributors). Synthetic data (with
    ``per_word`` > 0): a fresh draw of ``per_word`` settings per word from the same
    generator with data seed ``data_seed + 1``, none of them seen in training. The split
    keeps ~10 settings per word, too few for the ratios of distribution match and blend
    fidelity (its noise floor dominates them and pulls every ratio toward 1).
    """
    from neuraleq_jax import config as config_lib
    from neuraleq_jax.train import DATASETS

    data = config_lib.from_dict(config).data
    if data.dataset != "synthetic" or int(per_word) <= 0:
        return heldout, "the held-out split"
    seed = data.data_seed + FRESH_SEED_OFFSET
    fresh = DATASETS["synthetic"](dataclasses.replace(data, per_word=int(per_word), data_seed=seed))
    return fresh, (
        f"a fresh synthetic draw, {int(per_word)} settings per word (data seed "
        f"{seed}), not the split's held-out part"
    )


# ------------------------------------------------------------------ systems


def load_model(workdir: str | Path):
    """The trained facade, ``NeuralEQMorphingSystem.load(workdir)``."""
    try:
        from neuraleq_jax.system import NeuralEQMorphingSystem
    except ImportError as error:
        raise RuntimeError(
            f"cannot import neuraleq_jax.system ({error}); evaluate the lite "
            f"baseline alone with --baseline-only"
        ) from None
    system = NeuralEQMorphingSystem.load(workdir)
    if not callable(getattr(system, "centre_settings", None)):
        raise RuntimeError(
            "NeuralEQMorphingSystem has no centre_settings() method "
            "(each word's decoded latent centre, [W, 15]); the morph end-point "
            "figure needs it"
        )
    return system


def machine_description() -> str:
    """CPU model, core count and JAX backend, for the report."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import jax

    return (
        f"{cpu}, {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, jax {jax.__version__} "
        f"({jax.default_backend()}, {jax.device_count()} devices)"
    )


# ------------------------------------------------------------------ plots


def _plots(
    arrays: dict,
    heldout,
    system_name: str,
    out_dir: Path,
    report_dir: Path,
    details: dict | None = None,
    envelope_data=None,
) -> list[str]:
    """Generated vs held-out envelopes per word (10–90 %, medians; titled with the word's
    distribution match from ``details``; held-out settings from ``envelope_data``, default
    ``heldout``), the first pair's morph and a 2-D latent map; paths relative to the report.
    Raises ImportError when matplotlib (or plots) is missing."""
    from neuraleq_jax import plots

    plots.require_matplotlib()  # before any folder exists: a broken install leaves none
    folder = out_dir / PLOTS_DIR / system_name
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    vocabulary = heldout.vocabulary
    match = (details or {}).get("fidelity", {}).get("distribution_match_per_word", {})
    for w, word in enumerate(vocabulary):
        data = heldout if envelope_data is None else envelope_data
        mine = data.settings[data.word_ids == w]
        if len(mine) >= 2:
            note = f"distribution match {match[word]:.2f} (goal ≤ 2)" if word in match else None
            written.append(
                plots.plot_envelope_comparison(
                    arrays["generated"][w],
                    mine,
                    folder / f"envelope_{word}.png",
                    word,
                    title=f"{system_name}: generated '{word}' vs held-out data",
                    note=note,
                    layout=heldout.layout,
                )
            )
    a, b = arrays["pairs"][0]
    written.append(
        plots.plot_morph(
            arrays["paths"][0],
            folder / f"morph_{vocabulary[a]}_{vocabulary[b]}.png",
            start_label=vocabulary[a],
            end_label=vocabulary[b],
            title=f"{system_name}: {vocabulary[a]} → {vocabulary[b]}",
            layout=heldout.layout,
        )
    )
    latents = np.asarray(arrays["latents"], dtype=np.float64)
    centred = latents - latents.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    points = centred @ vt[:2].T if vt.shape[0] >= 2 else np.c_[centred[:, :1], 0 * centred[:, :1]]
    written.append(
        plots.plot_latent_2d(
            points,
            arrays["word_ids"],
            vocabulary,
            folder / "latent_pca.png",
            title=f"{system_name}: held-out latents (first 2 principal components)",
        )
    )
    return [os.path.relpath(p, report_dir) for p in written]


# ------------------------------------------------------------------ the whole evaluation


def evaluate_workdir(
    workdir: str | Path,
    *,
    out_dir: str | Path | None = None,
    n_variations: int = 100,
    steps: int = 33,
    seed: int = 0,
    baseline_only: bool = False,
    make_plots: bool = True,
    notes: Sequence[str] = (),
    fidelity_per_word: int = FIDELITY_PER_WORD,
) -> dict:
    """Evaluate the model in ``workdir`` and the lite baseline; write metrics.json, report.md.

    Args:
      workdir: a training workdir (``config.json``, and the model bundle unless
        ``baseline_only``).
      out_dir: where to write (default: ``workdir``).
      n_variations, steps, seed: as in :func:`evaluation.evaluate_system`.
      notes: extra lines for the report's closing notes.
      fidelity_per_word: synthetic data only: held-out settings per word of the fresh draw
        the fidelity figures compare with (:func:`fidelity_heldout_from_config`); 0 uses the
        held-out split.
    Returns:
      The metrics dict that was written to ``metrics.json``.
    """
    workdir = Path(workdir)
    out_dir = Path(out_dir) if out_dir is not None else workdir
    config = read_config(workdir)
    # before minutes of computing: an unwritable output folder would lose every figure
    check_writable(
        out_dir,
        purpose="the evaluation (metrics.json, report.md, plots/)",
        hint="Write it elsewhere with --out DIR (out_dir=)",
    )
    if config.get("data", {}).get("dataset") in CROWD_DATASETS and not baseline_only:
        return evaluate_crowd_workdir(
            workdir, config, out_dir=out_dir, n_variations=n_variations, steps=steps, seed=seed
        )
    train, heldout, data_text, split_text = split_from_config(config)
    fidelity_heldout, fidelity_text = fidelity_heldout_from_config(
        config, heldout, fidelity_per_word
    )
    kw = dict(
        train=train,
        fidelity_heldout=fidelity_heldout,
        n_variations=n_variations,
        steps=steps,
        seed=seed,
        return_arrays=True,
    )

    baseline = LiteBaseline(seed=seed)
    fit = baseline.fit(train)
    systems = {"baseline": baseline}
    if not baseline_only:
        systems["model"] = load_model(workdir)

    results, arrays = {}, {}
    for name, system in systems.items():
        figures = evaluation.evaluate_system(system, heldout, **kw)
        arrays[name] = figures.pop("arrays")
        results[name] = figures
    results["baseline"]["explained_variance"] = fit["explained_variance"]
    setup = results["baseline"]["setup"]
    references = reference_figures(
        train, fidelity_heldout, n_variations=n_variations, seed=seed, accuracy_heldout=heldout
    )
    real_data = config.get("data", {}).get("dataset", "synthetic") != "synthetic"

    plot_paths, plot_notes = [], []
    if make_plots:
        for name in ("model", "baseline"):
            if name in arrays:
                try:
                    plot_paths += _plots(
                        arrays[name],
                        heldout,
                        name,
                        out_dir,
                        out_dir,
                        results[name]["details"],
                        fidelity_heldout,
                    )
                except ImportError as error:
                    plot_notes = [f"plots skipped: {error}"]
                    break

    metrics = {
        "setup": {
            "config_name": config.get("name", "run"),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine_description(),
            "workdir": str(workdir),
            "data": data_text,
            "split": split_text,
            "fidelity_heldout": fidelity_text,
            "seed": seed,
            "n_variations": n_variations,
            "steps": steps,
            "n_pairs": setup["n_pairs"],
            "boxes": setup["boxes"],
            "baseline": (
                f"PCA({fit['n_components']}) on normalised settings "
                f"(paramspace.normalize), explained variance "
                f"{fit['explained_variance']:.1%}; kernel-weighted kNN "
                f"(k = {baseline.n_neighbors}) back to settings; "
                f"constant-speed morphs"
            ),
            "config": config,
        },
        "model": results.get("model"),
        "baseline": results["baseline"],
        "model_error": "--baseline-only was given" if baseline_only else None,
        "references": references,
        "goals": {
            name: evaluation.check_goals(results[name], real_data=real_data) for name in results
        },
        "plots": plot_paths,
        "notes": list(notes) + plot_notes + _standard_notes(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    report.atomic_write_text(
        out_dir / METRICS_FILE, json.dumps(_jsonable(metrics), indent=2, allow_nan=False) + "\n"
    )
    report.write_report(metrics, out_dir / REPORT_FILE)
    return metrics


def reference_figures(
    train, heldout, *, n_variations: int = 100, seed: int = 0, accuracy_heldout=None
) -> dict:
    """The fidelity figures of SPEC §6's trivial reference generator, a per-word Gaussian in
    the unit space clipped to range (:func:`fidelity.unit_gaussian_settings`), drawing
    ``n_variations`` settings per word: ``{"unit_gaussian": figures}``. (The other reference,
    each system decoding its own training latents, is in its ``details.decoded_training``.)
    Word accuracy's classifier is built on ``accuracy_heldout`` (default ``heldout``)."""
    n_words = len(heldout.vocabulary)
    drawn = fidelity.unit_gaussian_settings(
        train.settings, train.word_ids, n_words, n_variations, seed=seed, layout=train.layout
    )
    ids = np.repeat(np.arange(n_words), n_variations)
    return {
        "unit_gaussian": evaluation.generated_set_figures(
            drawn.reshape(-1, train.layout.n_params),
            ids,
            train,
            heldout,
            accuracy_heldout=accuracy_heldout,
        )
    }


CROWD_DATASETS = ("audealize", "crowd")


def evaluate_crowd_workdir(
    workdir: Path,
    config: dict,
    *,
    out_dir: Path,
    n_variations: int = 100,
    steps: int = 33,
    seed: int = 0,
) -> dict:
    """A crowd vocabulary's evaluation (:mod:`neuraleq_jax.crowd_eval`): crowd-curve fidelity
    per source (median r, median relative error, worst 10 words) beside the lite baseline fitted
    on the same training part, morphs between crowd words and the word map's agreement with
    Audealize's; writes metrics.json and report.md."""
    from neuraleq_jax import config as config_lib
    from neuraleq_jax import crowd_eval
    from neuraleq_jax.train import build_datasets

    system = load_model(workdir)
    baseline = LiteBaseline(seed=seed)
    baseline.fit(build_datasets(config_lib.from_dict(config).data)[0])
    figures = crowd_eval.evaluate_crowd(
        system, config, n_variations=n_variations, steps=steps, seed=seed, baseline=baseline
    )
    metrics = {
        "setup": {
            "config_name": config.get("name", "run"),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine_description(),
            "workdir": str(workdir),
            "data": f"{config['data']['dataset']} ({config['data']['path']})",
            "seed": seed,
            "n_variations": n_variations,
            "steps": steps,
            "config": config,
        },
        "model": figures,
        "goals": {"model": crowd_eval.check_goals(figures)},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    report.atomic_write_text(
        out_dir / METRICS_FILE, json.dumps(_jsonable(metrics), indent=2, allow_nan=False) + "\n"
    )
    report.atomic_write_text(out_dir / REPORT_FILE, crowd_eval.render_report(metrics))
    return metrics


def _standard_notes() -> list[str]:
    return [
        "Word accuracy is judged as SPEC §6 and issue 15 state it (≥ the data's own − 0.03); "
        "far above the data's own means caricatures rather than the crowd's settings.",
        "Distribution match uses V-statistic energy distances with the generated set's "
        "within term weighted as for the training set's size, so sampling the data's own "
        "distribution scores 1 in expectation whatever the number of variations "
        "(neuraleq_jax/fidelity.py). Held-out sets are small (about 10 settings per word on "
        "the default synthetic split), so each word's figure moves by tenths between splits.",
        'Blend fidelity is taken over every ordered word pair ("0.7 a + 0.3 b" and '
        '"0.7 b + 0.3 a"); the lite baseline has no blends, so its figure is that of a 70/30 '
        "mixture of its single-word variations.",
        "The lite baseline's latent is PCA of normalised settings, where the ten frequency "
        "and Q dimensions (random in the synthetic set) carry most of the variance: its "
        "latent silhouette is near 0 by construction, and its 8-of-15-dimension PCA round "
        "trip loses information, hence its response error.",
        "The baseline decodes with a kNN average of a word's own settings, which shrinks "
        "variation (calibration below 1) but keeps every gain inside the word's box.",
    ]


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None  # strict JSON has no NaN/Inf
    return value


# ------------------------------------------------------------------ command line


def _print_crowd_summary(metrics: dict) -> None:
    """Per-source fidelity lines (crowd vocabularies only)."""
    for name, source in ((metrics.get("model") or {}).get("sources") or {}).items():
        worst = ", ".join(f"{w['word']} {w['r']:.2f}" for w in source["worst"])
        print(
            f"{name}: {source['words']} words, median r {source['r_median']:.4f}, median "
            f"relative error {source['rel_median']:.4f}; worst 10 (r): {worst}"
        )


def fidelity_lines(metrics: dict) -> list[str]:
    """Console lines of the fidelity figures: per-word distribution match and the worst blend
    pair of each system, and the reference generators' summaries."""
    lines = []
    for name in ("model", "baseline"):
        figures = metrics.get(name) or {}
        details = figures.get("details") or {}
        per_word = (details.get("fidelity") or {}).get("distribution_match_per_word")
        if per_word:
            lines.append(
                f"{name:8s} distribution match per word: "
                + ", ".join(f"{word} {value:.2f}" for word, value in per_word.items())
            )
        if details.get("blend_fidelity"):
            lines.append(
                f"{name:8s} worst blend: {details['blend_fidelity']['worst_pair']} "
                f"({figures['blend_fidelity_worst']:.3f}, "
                f"{details['blend_fidelity']['how']})"
            )
    references = [("unit-space Gaussian", (metrics.get("references") or {}).get("unit_gaussian"))]
    references += [
        (
            f"{name} decoding its training latents",
            ((metrics.get(name) or {}).get("details") or {}).get("decoded_training"),
        )
        for name in ("model",)
    ]
    for title, figures in references:
        if figures:
            lines.append(
                f"reference {title}: distribution match "
                f"{figures['distribution_match_mean']:.2f} mean / "
                f"{figures['distribution_match_worst']:.2f} worst, copy rate "
                f"{figures['copy_rate']:.1%}, mean response ÷ noise "
                f"{figures['mean_response_noise_ratio_worst']:.2f} worst, "
                f"word accuracy {figures['word_accuracy']:.3f}"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m neuraleq_jax.evaluate",
        description="Compute every SPEC §6 figure for a trained workdir and the lite baseline; "
        "write metrics.json, report.md and plots.",
    )
    parser.add_argument("--workdir", required=True, help="training workdir (holds config.json)")
    parser.add_argument(
        "--out",
        default=None,
        help="output folder (default: the workdir; give one when the workdir is read-only)",
    )
    parser.add_argument(
        "--n-variations", type=int, default=100, help="generated settings per word (default 100)"
    )
    parser.add_argument("--steps", type=int, default=33, help="morph steps (default 33)")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    parser.add_argument(
        "--baseline-only",
        action="store_true",
        help="evaluate only the lite baseline (no trained model needed)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument(
        "--fidelity-per-word",
        type=int,
        default=FIDELITY_PER_WORD,
        help="synthetic data: settings per word of the fresh held-out draw "
        "that distribution match and blend fidelity compare with "
        f"(default {FIDELITY_PER_WORD}; 0 = the held-out split)",
    )
    parser.add_argument(
        "--note", action="append", default=[], help="a line for the report's notes (repeatable)"
    )
    args = parser.parse_args(argv)
    try:
        metrics = evaluate_workdir(
            args.workdir,
            out_dir=args.out,
            n_variations=args.n_variations,
            steps=args.steps,
            seed=args.seed,
            baseline_only=args.baseline_only,
            make_plots=not args.no_plots,
            notes=args.note,
            fidelity_per_word=args.fidelity_per_word,
        )
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"evaluate: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # an output folder that cannot be written
        print(f"evaluate: error: {error}", file=sys.stderr)
        return 1
    out = Path(args.out or args.workdir)
    _print_crowd_summary(metrics)
    for name in ("model", "baseline"):
        for row in metrics["goals"].get(name, []):
            mark = "pass" if row["passed"] else "MISS"
            print(
                f"{name:8s} {row['label']:36s} {row['value']:9.4f}  goal {row['goal']:30s} "
                f"{mark} ({row['margin']:+.4f})"
            )
    for line in fidelity_lines(metrics):
        print(line)
    print(f"wrote {out / METRICS_FILE} and {out / REPORT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
