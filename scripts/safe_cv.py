"""Repeated contributor-grouped evaluation of the SAFE preset: is generated word accuracy as high
as the held-out contributors' own?

    python scripts/safe_cv.py        # 5 split seeds, writes benchmarks/results/safe_cv.json
    python scripts/safe_cv.py --repeats 10 --ratios 0.6,0.8,1.0 --out /tmp/cv.json

One contributor-grouped split holds only a handful of test contributors, and its figures move by
several points from one split seed to the next, so one split cannot say whether generated
settings are recognised as their word as often as real held-out settings are. For split seeds
0 .. K-1 this script, per split:

1. splits SAFE-DB by contributor with the preset's fractions (``data.grouped_split``, what
   ``python -m neuraleq_jax.train --config safe --data.split_seed=S`` does) and trains the
   preset's model on the training contributors (``trainer.fit``);
2. chooses the variation spread (``train.variation_ratio``) on the VALIDATION contributors only,
   by the rule configs/safe.py documents: the widest ratio of the grid whose generated settings
   are recognised as their word at least as often as the validation contributors' own settings
   (if none is, the one recognised most often). Only the word model is refitted per ratio
   (``generation.fit_word_model`` through ``experiment.fit_word_model_for_run``); the network is not
   retrained;
3. reports the quality figures on the TEST contributors (``evaluator.evaluate_system``) for the
   chosen ratio, for the preset's own ratio, and for the lite baseline fitted on the same
   training part: word accuracy of generated settings, the same classifier's accuracy on the
   held-out real settings, latent silhouette, calibration median, box rate (against the test
   contributors' 5–95 % gain ranges, SAFE has no word boxes), and the fidelity figures:
   distribution match per word (energy distance of generated vs test-contributor responses ÷
   that of the training vs test contributors' settings; goal ≤ 2 for every word), copy rate,
   blend fidelity and the mean-response figure, beside the same figures of the
   per-word Gaussian in the unit space (``unit_gaussian``, no network).

Aggregates: per-split table, mean and std over splits, and pooled accuracies (every split's
test predictions put together, then hits ÷ count). The per-split predictions are stored in the
JSON so the pooled figures can be recomputed. Splits of different seeds are drawn independently,
so their test contributors may overlap (a repeated hold-out, not a K-fold).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neuraleq_jax import config as config_lib
from neuraleq_jax import fileio
from neuraleq_jax.config import ExperimentConfig
from neuraleq_jax.data.dataset import EQDataset, grouped_split
from neuraleq_jax.evaluation import evaluator
from neuraleq_jax.evaluation.baseline import LiteBaseline
from neuraleq_jax.metrics import goals
from neuraleq_jax.training import trainer

DEFAULT_RATIOS = (0.6, 0.7, 0.8, 0.9, 1.0)
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "safe_cv.json"
# the test figures kept per system and split (keys of evaluator.evaluate_system's result)
FIDELITY = (
    "distribution_match_mean",
    "distribution_match_worst",
    "copy_rate",
    "mean_response_noise_ratio_worst",
)
FIGURES = (
    "word_accuracy",
    "word_accuracy_data",
    "latent_silhouette",
    "calibration_median",
    "box_rate",
    "response_error_mean_db",
    "blend_fidelity_worst",
) + FIDELITY
REFERENCE_FIGURES = ("word_accuracy", "word_accuracy_data") + FIDELITY
SYSTEMS = ("model", "model_preset_ratio", "baseline")
# SAFE-DB's goal: every word's distribution match on held-out contributors at most this
DISTRIBUTION_GOAL = goals.REAL_DATA_BOUNDS["distribution_match_worst"]


# ------------------------------------------------------------------ the pieces of one split


def check_disjoint(parts: Sequence[EQDataset]) -> None:
    """Raise ValueError when a contributor appears in two parts (the split must be grouped)."""
    seen: dict[str, int] = {}
    for index, part in enumerate(parts):
        if part.contributors is None:
            raise ValueError(f"part {index} has no contributor ids; a grouped split needs them")
        for contributor in set(part.contributors.tolist()):
            if seen.setdefault(contributor, index) != index:
                raise ValueError(
                    f"contributor {contributor!r} is in parts {seen[contributor]} and {index}"
                )


def make_system(params, experiment: ExperimentConfig, train_ds: EQDataset, ratio: float):
    """The trained network with a word model fitted for ``variation_ratio = ratio``.

    Goes through the training command's own word-model call, so the ratio (a scale on the
    kernel bandwidth calibrated on a fifth of the training part) reaches
    ``generation.fit_word_model`` as after ``python -m neuraleq_jax.train``.
    """
    from neuraleq_jax.system import NeuralEQMorphingSystem
    from neuraleq_jax.training.experiment import fit_word_model_for_run

    train_config = dataclasses.replace(experiment.train, variation_ratio=float(ratio))
    word_model = fit_word_model_for_run(params, experiment.model, train_config, train_ds)
    return NeuralEQMorphingSystem.from_params(
        params,
        experiment.model,
        word_model,
        train_ds.vocabulary,
        train_ds.layout,
        train_config=train_config,
        seed=train_config.seed,
    )


def choose_ratio(validation: dict[float, dict]) -> float:
    """The widest ratio whose generated accuracy is >= the validation data's own accuracy.

    Args:
      validation: ``{ratio: {"word_accuracy": generated, "word_accuracy_data": own}}``.
    Returns:
      That ratio; when no ratio reaches the data's own accuracy, the one with the highest
      generated accuracy (the wider one on a tie).
    """
    if not validation:
        raise ValueError("no ratios were measured on the validation contributors")
    passing = [r for r, f in validation.items() if f["word_accuracy"] >= f["word_accuracy_data"]]
    if passing:
        return max(passing)
    return max(validation, key=lambda r: (validation[r]["word_accuracy"], r))


def heldout_figures(
    system, test_ds: EQDataset, *, train_ds: EQDataset, n_variations: int, steps: int, seed: int
) -> dict:
    """The quality figures of ``system`` on the test contributors, its distribution match per
    word, and the nearest-word classifier's labels behind its word accuracies (for pooling
    over splits): ``{"generated_asked", "generated_predicted"}`` (``W·V`` each) and
    ``{"data_true", "data_predicted"}`` (one per held-out setting)."""
    figures = evaluator.evaluate_system(
        system,
        test_ds,
        train=train_ds,
        n_variations=n_variations,
        steps=steps,
        seed=seed,
        return_arrays=True,
    )
    arrays = figures["arrays"]
    out = {key: float(figures[key]) for key in FIGURES}
    out["distribution_match_per_word"] = figures["details"]["fidelity"][
        "distribution_match_per_word"
    ]
    out["worst_blend"] = figures["details"]["blend_fidelity"]["worst_pair"]
    out["predictions"] = {
        "generated_asked": arrays["generated_word_ids"].tolist(),
        "generated_predicted": arrays["generated_predicted"].tolist(),
        "data_true": arrays["word_ids"].tolist(),
        "data_predicted": arrays["data_predicted"].tolist(),
    }
    return out


def gaussian_figures(
    train_ds: EQDataset, test_ds: EQDataset, *, n_variations: int, seed: int
) -> dict:
    """The fidelity figures of the per-word unit-space Gaussian on the test
    contributors (:func:`neuraleq_jax.evaluation.workdirs.reference_figures`)."""
    from neuraleq_jax.evaluation.workdirs import reference_figures

    figures = reference_figures(train_ds, test_ds, n_variations=n_variations, seed=seed)[
        "unit_gaussian"
    ]
    out = {key: float(figures[key]) for key in REFERENCE_FIGURES}
    out["distribution_match_per_word"] = figures["details"]["distribution_match_per_word"]
    return out


def validate_ratios(
    params, experiment: ExperimentConfig, train_ds: EQDataset, val_ds: EQDataset, ratios, **kw
) -> tuple[dict, dict]:
    """``(systems, validation)`` by ratio: the word model refitted with each ``variation_ratio``
    and its word accuracy (beside the validation contributors' own) and calibration on
    ``val_ds``."""
    validation, systems = {}, {}
    for ratio in sorted({float(r) for r in ratios}):
        systems[ratio] = make_system(params, experiment, train_ds, ratio)
        figures = evaluator.evaluate_system(systems[ratio], val_ds, **kw)
        validation[ratio] = {
            "word_accuracy": float(figures["word_accuracy"]),
            "word_accuracy_data": float(figures["word_accuracy_data"]),
            "calibration_median": float(figures["calibration_median"]),
        }
    return systems, validation


def _describe(part: EQDataset) -> dict:
    ids = sorted(set(part.contributors.tolist()))
    return {
        "settings": len(part),
        "contributors": len(ids),
        "per_word": part.counts(),
        "contributor_ids": [str(c) for c in ids],
    }


def evaluate_split(
    train_ds: EQDataset,
    val_ds: EQDataset,
    test_ds: EQDataset,
    experiment: ExperimentConfig,
    *,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    n_variations: int = 100,
    steps: int = 33,
    seed: int = 0,
) -> dict:
    """Train on ``train_ds``, choose the ratio on ``val_ds``, report on ``test_ds``.

    ``test_ds`` is touched only after the ratio is chosen, so it cannot change the choice.
    Returns a JSON-ready dict: sizes and contributor counts, ``validation`` (per ratio),
    ``chosen_ratio``, and test figures for ``model`` (chosen ratio), ``model_preset_ratio``
    (``experiment.train.variation_ratio``), ``baseline`` and ``unit_gaussian``.
    """
    check_disjoint((train_ds, val_ds, test_ds))
    kw = dict(n_variations=n_variations, steps=steps, seed=seed)
    start = time.perf_counter()
    result = trainer.fit(train_ds, experiment.model, experiment.train, val_ds=val_ds)
    params = result.params
    train_s = time.perf_counter() - start

    systems, validation = validate_ratios(params, experiment, train_ds, val_ds, ratios, **kw)
    chosen = choose_ratio(validation)

    # ---- only now the test contributors
    preset = float(experiment.train.variation_ratio)
    if preset not in systems:
        systems[preset] = make_system(params, experiment, train_ds, preset)
    baseline = LiteBaseline(seed=seed)
    baseline.fit(train_ds)
    test = {
        "model": heldout_figures(systems[chosen], test_ds, train_ds=train_ds, **kw),
        "model_preset_ratio": heldout_figures(systems[preset], test_ds, train_ds=train_ds, **kw),
        "baseline": heldout_figures(baseline, test_ds, train_ds=train_ds, **kw),
        "unit_gaussian": gaussian_figures(train_ds, test_ds, n_variations=n_variations, seed=seed),
    }
    return {
        "parts": {
            "train": _describe(train_ds),
            "validation": _describe(val_ds),
            "test": _describe(test_ds),
        },
        "validation": {f"{r:g}": v for r, v in validation.items()},
        "chosen_ratio": chosen,
        "preset_ratio": preset,
        "test": test,
        "final_train_loss": float(result.history[-1]["train_loss"]),
        "train_s": train_s,
        "total_s": time.perf_counter() - start,
    }


# ------------------------------------------------------------------ aggregation


def pooled_accuracy(splits: Sequence[dict], system: str = "model") -> dict:
    """Every split's test labels together, then hits ÷ count (generated and held-out real)."""
    gen_hits = gen_n = data_hits = data_n = 0
    for split in splits:
        p = split["test"][system]["predictions"]
        gen_hits += int(np.sum(np.asarray(p["generated_asked"]) == p["generated_predicted"]))
        gen_n += len(p["generated_asked"])
        data_hits += int(np.sum(np.asarray(p["data_true"]) == p["data_predicted"]))
        data_n += len(p["data_true"])
    return {
        "generated": gen_hits / gen_n,
        "data": data_hits / data_n,
        "margin": gen_hits / gen_n - data_hits / data_n,
        "n_generated": gen_n,
        "n_data": data_n,
    }


def _spread(table: dict) -> dict:
    """Mean and std (ddof 1 when there are >= 2 values) of each figure's per-split values."""
    ddof = 1 if len(next(iter(table.values()))) > 1 else 0
    return {
        "mean": {key: float(v.mean()) for key, v in table.items()},
        "std": {key: float(v.std(ddof=ddof)) for key, v in table.items()},
    }


def _distribution_summary(splits: Sequence[dict], system: str) -> dict:
    """Per word, the mean and the largest distribution match over splits, and the number of
    splits where every word is within SAFE-DB's goal."""
    per_word = [s["test"][system]["distribution_match_per_word"] for s in splits]
    words = list(per_word[0])
    return {
        "distribution_match_per_word": {
            word: {
                "mean": float(np.mean([p[word] for p in per_word])),
                "max": float(np.max([p[word] for p in per_word])),
            }
            for word in words
        },
        "splits_passing_distribution": int(
            sum(max(p.values()) <= DISTRIBUTION_GOAL for p in per_word)
        ),
    }


def summarise(splits: Sequence[dict]) -> dict:
    """Mean, std (ddof 1 when there are >= 2 splits) and pooled figures, and the pass counts.

    A split passes when its generated word accuracy is >= its held-out real accuracy,
    and passes the goal when it is >= the real accuracy − 0.03; it passes the distribution goal
    when every word's distribution match is <= 2.
    """
    out = {}
    for system in SYSTEMS:
        table = {key: np.array([s["test"][system][key] for s in splits]) for key in FIGURES}
        margin = table["word_accuracy"] - table["word_accuracy_data"]
        ddof = 1 if len(splits) > 1 else 0
        out[system] = {
            **_spread(table),
            "margin_mean": float(margin.mean()),
            "margin_std": float(margin.std(ddof=ddof)),
            "pooled": pooled_accuracy(splits, system),
            "splits_passing": int(np.sum(margin >= 0)),
            "splits_passing_spec": int(np.sum(margin >= -0.03)),
            **_distribution_summary(splits, system),
        }
    table = {
        key: np.array([s["test"]["unit_gaussian"][key] for s in splits])
        for key in REFERENCE_FIGURES
    }
    out["unit_gaussian"] = {**_spread(table), **_distribution_summary(splits, "unit_gaussian")}
    out["n_splits"] = len(splits)
    out["chosen_ratios"] = [s["chosen_ratio"] for s in splits]
    return out


def cross_validate(
    dataset: EQDataset,
    experiment: ExperimentConfig,
    *,
    split_seeds: Sequence[int] = range(5),
    ratios=DEFAULT_RATIOS,
    n_variations: int = 100,
    steps: int = 33,
    seed: int = 0,
    min_per_word: int = 5,
    progress=print,
) -> dict:
    """:func:`evaluate_split` for every split seed, then :func:`summarise`.

    A split where some part holds fewer than ``min_per_word`` settings of a word is skipped
    (listed under ``"skipped"``), a rule that looks at the split only, never at results.
    """
    if dataset.contributors is None:
        raise ValueError("cross_validate needs contributor ids (a contributor-grouped split)")
    splits, skipped = [], []
    for split_seed in split_seeds:
        parts = grouped_split(dataset, experiment.data.split_fractions, int(split_seed))
        if len(parts) != 3:
            raise ValueError(
                f"data.split_fractions must give train/validation/test, got {len(parts)} parts"
            )
        # decided from the split alone, before any training: a part where some word has too
        # few settings has no meaningful centroid or spread (e.g. a 3-setting test part)
        smallest = min(min(p.counts().values()) for p in parts)
        if smallest < min_per_word:
            skipped.append(
                {
                    "split_seed": int(split_seed),
                    "reason": f"a part holds only {smallest} settings of some word "
                    f"(< {min_per_word})",
                    "sizes": [len(p) for p in parts],
                }
            )
            if progress is not None:
                progress(f"| {split_seed} | skipped: {skipped[-1]['reason']} |")
            continue
        split = evaluate_split(
            *parts, experiment, ratios=ratios, n_variations=n_variations, steps=steps, seed=seed
        )
        split["split_seed"] = int(split_seed)
        splits.append(split)
        if progress is not None:
            progress(row(split))
    if not splits:
        raise ValueError(f"every split was skipped: {skipped}")
    return {"splits": splits, "skipped": skipped, "summary": summarise(splits)}


# ------------------------------------------------------------------ output


def _per_word(values: dict) -> str:
    return ", ".join(f"{word} {value:.2f}" for word, value in values.items())


def row(split: dict) -> str:
    m, b = split["test"]["model"], split["test"]["baseline"]
    p, g = split["test"]["model_preset_ratio"], split["test"]["unit_gaussian"]
    t = split["parts"]["test"]
    return (
        f"| {split['split_seed']} | {t['contributors']} / {t['settings']} | "
        f"{split['chosen_ratio']:g} | {m['word_accuracy']:.3f} | "
        f"{m['word_accuracy_data']:.3f} | {m['word_accuracy'] - m['word_accuracy_data']:+.3f} "
        f"| {p['word_accuracy']:.3f} | {b['word_accuracy']:.3f} | "
        f"{m['latent_silhouette']:.3f} | {m['calibration_median']:.2f} | "
        f"{m['box_rate']:.1%} | {_per_word(m['distribution_match_per_word'])} | "
        f"{b['distribution_match_worst']:.2f} | {g['distribution_match_worst']:.2f} | "
        f"{m['copy_rate']:.1%} | {m['blend_fidelity_worst']:.3f} |"
    )


HEADER = (
    "| split seed | test contributors / settings | ratio (chosen on validation) | "
    "generated | held-out real | margin | generated at preset ratio | baseline generated "
    "| silhouette | calibration median | box rate | distribution match per word "
    "(goal ≤ 2) | baseline: worst word | unit-space Gaussian: worst word | copy rate | "
    "blend fidelity (worst) |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def table(result: dict) -> str:
    """A Markdown table: one row per split, then mean ± std and pooled rows."""
    lines = [HEADER] + [row(s) for s in result["splits"]]
    s = result["summary"]
    m, p, b, g = s["model"], s["model_preset_ratio"], s["baseline"], s["unit_gaussian"]
    mean, std = m["mean"], m["std"]
    lines.append(
        f"| mean ± std | | | {mean['word_accuracy']:.3f} ± {std['word_accuracy']:.3f} | "
        f"{mean['word_accuracy_data']:.3f} ± {std['word_accuracy_data']:.3f} | "
        f"{m['margin_mean']:+.3f} ± {m['margin_std']:.3f} | "
        f"{p['mean']['word_accuracy']:.3f} | {b['mean']['word_accuracy']:.3f} | "
        f"{mean['latent_silhouette']:.3f} ± {std['latent_silhouette']:.3f} | "
        f"{mean['calibration_median']:.2f} | {mean['box_rate']:.1%} | "
        + ", ".join(
            f"{w} {v['mean']:.2f} (max {v['max']:.2f})"
            for w, v in m["distribution_match_per_word"].items()
        )
        + f" | {b['mean']['distribution_match_worst']:.2f} | "
        f"{g['mean']['distribution_match_worst']:.2f} | {mean['copy_rate']:.1%} | "
        f"{mean['blend_fidelity_worst']:.3f} |"
    )
    lines.append(
        f"| pooled | {m['pooled']['n_data']} settings | | {m['pooled']['generated']:.3f} | "
        f"{m['pooled']['data']:.3f} | {m['pooled']['margin']:+.3f} | "
        f"{p['pooled']['generated']:.3f} | {b['pooled']['generated']:.3f} | | | | | | | | |"
    )
    n = s["n_splits"]
    lines.append(
        f"\nsplits where generated >= held-out real: {m['splits_passing']} of "
        f"{n} (>= real − 0.03, goal: {m['splits_passing_spec']}); at the "
        f"preset ratio {p['splits_passing']} of {n}"
    )
    lines.append(
        f"splits where every word's distribution match <= {DISTRIBUTION_GOAL:g}: model "
        f"{m['splits_passing_distribution']} of {n}, at the preset ratio "
        f"{p['splits_passing_distribution']}, baseline "
        f"{b['splits_passing_distribution']}, unit-space Gaussian "
        f"{g['splits_passing_distribution']}"
    )
    for skip in result.get("skipped", []):
        lines.append(f"split seed {skip['split_seed']} skipped: {skip['reason']}")
    return "\n".join(lines)


def code_version() -> dict:
    """Which code ran: the package folder, a SHA-256 over its sources, and the git commit with
    a flag for uncommitted package changes (when the package sits in a git checkout)."""
    import hashlib
    import subprocess

    import neuraleq_jax

    folder = Path(neuraleq_jax.__file__).resolve().parent
    digest = hashlib.sha256()
    for source in sorted(folder.rglob("*.py")):
        digest.update(source.relative_to(folder).as_posix().encode() + b"\0" + source.read_bytes())
    out = {"package": str(folder), "sources_sha256": digest.hexdigest()}
    try:
        git = ["git", "-C", str(folder.parent)]
        out["git_commit"] = subprocess.run(
            git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        out["package_modified"] = bool(
            subprocess.run(
                git + ["status", "--porcelain", "--", str(folder)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        out["git_commit"] = None  # not a git checkout (e.g. a `git archive` copy)
    return out


def write_json(result: dict, path: str | Path) -> Path:
    """Write ``result`` as strict JSON, atomically, with lists of plain numbers kept on one line
    (the per-split labels would otherwise take one line per setting)."""
    return fileio.atomic_write_json(path, result, inline_number_lists=True)


def _ratios(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--ratios expects numbers like 0.6,0.8,1.0, got {text!r}"
        ) from None
    if not values or any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"every ratio must be > 0, got {text!r}")
    return values


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="safe", help="preset (default safe)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="number of split seeds, 0 .. K-1 (default 5)"
    )
    parser.add_argument("--first-seed", type=int, default=0, help="first split seed (default 0)")
    parser.add_argument(
        "--ratios",
        type=_ratios,
        default=DEFAULT_RATIOS,
        help="variation_ratio grid searched on validation (default 0.6,0.7,0.8,0.9,1.0)",
    )
    parser.add_argument(
        "--n-variations",
        type=int,
        default=100,
        help="generated settings per word (default 100, as evaluate)",
    )
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    parser.add_argument(
        "--min-per-word",
        type=int,
        default=5,
        help="skip a split where a part holds fewer settings of a word (default 5)",
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"JSON (default {DEFAULT_OUT})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    from neuraleq_jax.data.registry import load_dataset
    from neuraleq_jax.training.experiment import setup_jax

    experiment = config_lib.load_preset(args.config)
    experiment = config_lib.apply_overrides(experiment, config_lib.parse_overrides(rest))
    setup_jax(experiment.distributed)
    dataset = load_dataset(experiment.data)
    seeds = list(range(args.first_seed, args.first_seed + args.repeats))
    print(
        f"{experiment.name}: {len(dataset)} settings, "
        f"{len(set(dataset.contributors.tolist()))} contributors, split seeds {seeds}, "
        f"ratios {list(args.ratios)}\n{HEADER}",
        flush=True,
    )
    start = time.perf_counter()
    result = cross_validate(
        dataset,
        experiment,
        split_seeds=seeds,
        ratios=args.ratios,
        n_variations=args.n_variations,
        seed=args.seed,
        min_per_word=args.min_per_word,
        progress=lambda line: print(line, flush=True),
    )
    result["setup"] = {
        "command": "python scripts/safe_cv.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "config": config_lib.to_dict(experiment),
        "split_seeds": seeds,
        "ratios": list(args.ratios),
        "n_variations": args.n_variations,
        "seed": args.seed,
        "min_per_word": args.min_per_word,
        "wall_s": time.perf_counter() - start,
        "code": code_version(),
        "rule": "ratio: the widest whose generated word accuracy on the validation "
        "contributors is >= their own settings' (else the most accurate); figures on "
        "the test contributors",
    }
    print("\n" + table(result))
    print(f"wrote {write_json(result, args.out)} in {result['setup']['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
