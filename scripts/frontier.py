"""Silhouette vs response error: the trade-off of the loss weights on the synthetic set.

    python scripts/frontier.py                       # the default grid (about 10 runs)
    python scripts/frontier.py --grid cluster_weight=0,1 contrastive_weight=0.1,1 \
        --out benchmarks/results/frontier.json

Each point trains the synthetic preset (50 epochs, batch 16, Adam 1e-3) with some loss weights
changed and reports, on the held-out test split: latent silhouette, response error
(mean RMS dB between a setting's response and its reconstruction's), and the unit-space MSE of
frequency and Q beside that of always predicting the training mean. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import time

from neuraleq_jax import config as config_lib
from neuraleq_jax.data.registry import build_datasets
from neuraleq_jax.training import trainer

# (encoder, overrides) pairs: the cluster term alone, then λ × τ with it on, then the
# transformer encoder at two cluster weights
DEFAULT_POINTS = (
    [("residual", {"cluster_weight": w}) for w in (0.0, 0.3, 1.0, 3.0)]
    + [
        ("residual", {"contrastive_weight": lam, "temperature": tau})
        for lam, tau in itertools.product((0.1, 1.0), (0.05, 0.5))
    ]
    + [("transformer", {"cluster_weight": w}) for w in (0.3, 1.0)]
)


def _parse_grid(items: list[str]) -> list[tuple[str, dict]]:
    axes = {}
    for item in items:
        name, _, values = item.partition("=")
        if not values:
            raise SystemExit(f"--grid expects name=v1,v2,..., got {item!r}")
        axes[name] = [float(v) if name != "encoder" else v for v in values.split(",")]
    encoders = axes.pop("encoder", ["residual"])
    names = list(axes)
    return [
        (encoder, dict(zip(names, combo)))
        for encoder in encoders
        for combo in itertools.product(*axes.values())
    ]


def measure(encoder: str, overrides: dict) -> dict:
    experiment = config_lib.load_preset("synthetic")
    model = dataclasses.replace(experiment.model, encoder=encoder)
    train_config = dataclasses.replace(experiment.train, **overrides)
    train_ds, _, test_ds = build_datasets(experiment.data)
    start = time.perf_counter()
    result = trainer.fit(train_ds, model, train_config)
    figures = trainer.evaluate_dataset(
        result.params, model, train_config, test_ds, reference_ds=train_ds
    )
    return {
        "encoder": encoder,
        **{
            k: getattr(train_config, k)
            for k in ("contrastive_weight", "temperature", "cluster_weight", "response_weight")
        },
        "silhouette": figures["silhouette"],
        "response_db": figures["response_db"],
        "freq_mse": figures["recon_freq"],
        "freq_mean_mse": figures["mean_baseline_freq"],
        "q_mse": figures["recon_q"],
        "q_mean_mse": figures["mean_baseline_q"],
        "gain_mse": figures["recon_gain"],
        "seconds": time.perf_counter() - start,
    }


def table(rows: list[dict]) -> str:
    head = (
        "| encoder | λ | τ | cluster | silhouette | response dB | freq MSE (mean) "
        "| Q MSE (mean) |\n|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['encoder']} | {r['contrastive_weight']:g} | {r['temperature']:g} | "
            f"{r['cluster_weight']:g} | {r['silhouette']:.3f} | {r['response_db']:.3f} | "
            f"{r['freq_mse']:.3f} ({r['freq_mean_mse']:.3f}) | "
            f"{r['q_mse']:.3f} ({r['q_mean_mse']:.3f}) |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--grid",
        nargs="*",
        default=None,
        help="name=v1,v2 ... (TrainConfig loss fields, or encoder=...)",
    )
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    points = _parse_grid(args.grid) if args.grid else DEFAULT_POINTS
    rows = []
    for encoder, overrides in points:
        rows.append(measure(encoder, overrides))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(table(rows))
    if args.out:
        from neuraleq_jax.training.checkpoints import atomic_write_text

        atomic_write_text(args.out, json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
