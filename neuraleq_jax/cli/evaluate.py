"""Evaluate a trained workdir beside the lite baseline.

    python -m neuraleq_jax.evaluate --workdir runs/synthetic

Reads ``W/config.json`` (written by ``python -m neuraleq_jax.train``), rebuilds the same data
set and split, loads the model with ``NeuralEQMorphingSystem.load(W)``, fits the lite baseline
on the same training part, computes every figure for both on the held-out part, and writes
``metrics.json``, ``report.md`` and PNG plots (when matplotlib is installed) into W (or
``--out DIR``, for a workdir that is read-only; checked before anything is computed).
``--baseline-only`` evaluates the baseline alone (no trained model needed). The work is done
by :mod:`neuraleq_jax.evaluation.workdirs`; this module parses the command line and prints.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from neuraleq_jax.data.registry import FIDELITY_PER_WORD
from neuraleq_jax.evaluation.workdirs import METRICS_FILE, REPORT_FILE, evaluate_workdir
from neuraleq_jax.fileio import is_no_space, no_space_message


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m neuraleq_jax.evaluate",
        description="Compute every quality figure for a trained workdir and the lite baseline; "
        "write metrics.json, report.md and plots.",
    )
    parser.add_argument("--workdir", required=True, help="training workdir (holds config.json)")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    add_options(parser)
    return parser


def add_options(parser: argparse.ArgumentParser) -> None:
    """The evaluation's options besides ``--workdir`` and ``--seed``; ``neuraleq evaluate``
    adds the same ones to its parser, so its ``--help`` lists them."""
    parser.add_argument(
        "--out",
        default=None,
        help="output folder (default: the workdir; give one when the workdir is read-only)",
    )
    parser.add_argument(
        "--n-variations", type=int, default=100, help="generated settings per word (default 100)"
    )
    parser.add_argument("--steps", type=int, default=33, help="morph steps (default 33)")
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


def _print_summary(metrics: dict, out: Path) -> None:
    """The goal rows of each system, the fidelity lines and where the files went."""
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


def main(argv: Sequence[str] | None = None) -> int:
    return run(_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Evaluate as the parsed options (those of :func:`add_options`, ``workdir`` and ``seed``)
    ask; prints the summary; returns the exit status."""
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
    except (OSError, ValueError, RuntimeError) as error:
        message, code = _failure(error)
        print(f"neuraleq evaluate: {message}", file=sys.stderr)
        return code
    _print_summary(metrics, Path(args.out or args.workdir))
    return 0


def _failure(error: Exception) -> tuple[str, int]:
    """The one-line message and exit status of ``neuraleq``'s rule: 1 for a full disk or an
    output that cannot be written, 2 for a workdir or option that is wrong."""
    full = is_no_space(error)
    if full is not None:
        return no_space_message(full), 1
    text = " ".join(str(error).split())
    if isinstance(error, OSError) and not isinstance(error, FileNotFoundError):
        return text, 1  # an output folder that cannot be written
    return text, 2
