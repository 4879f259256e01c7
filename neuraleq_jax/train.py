"""Command-line training: ``python -m neuraleq_jax.train --config synthetic --workdir W``.

Every config field can be overridden, e.g. ``--train.epochs=20 --model.encoder=transformer
--data.split_fractions=0.8,0.1,0.1`` (a bare ``--epochs=20`` works where the name is unique).
The workdir receives ``config.json``, ``metrics.jsonl``, Orbax checkpoints and, at the end, the
model bundle that ``checkpoints.load_bundle(W)`` reads. Rerunning the same command resumes
from the newest checkpoint (changing ``train.epochs`` extends or shortens the run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from neuraleq_jax import config as config_lib
from neuraleq_jax.config import DataConfig, DistributedConfig, ExperimentConfig
from neuraleq_jax.data import EQDataset

CONFIG_FILE = "config.json"
# fields that may differ between the run that wrote a workdir and the one resuming it
RESUMABLE_CHANGES = ("train.epochs", "train.checkpoint_every", "train.keep_checkpoints",
                     "train.variation_ratio", "train.freq_q_spread", "train.fold_variations",
                     "train.fold_margin",
                     "train.devices", "distributed.coordinator_address",
                     "distributed.num_processes", "distributed.process_id",
                     "distributed.local_devices")


def _synthetic(data: DataConfig) -> EQDataset:
    from neuraleq_jax.synthetic import make_synthetic
    from neuraleq_jax.vocabulary import with_sources
    return with_sources(make_synthetic(per_word=data.per_word, seed=data.data_seed), "synthetic")


def _safe(data: DataConfig) -> EQDataset:
    from neuraleq_jax.safedb import load_safe_db
    from neuraleq_jax.vocabulary import with_sources
    dataset, report = load_safe_db(data.path or None, layout=data.layout,
                                   min_examples=data.min_examples, words=data.words or None)
    return with_sources(dataset, "safe")


def _curves(data: DataConfig) -> EQDataset:
    from neuraleq_jax.curves import load_curve_dataset
    dataset, _curves_read, _fit = load_curve_dataset(data.path, max_rms_db=data.max_fit_rms_db,
                                                     seed=data.data_seed)
    if data.words:
        from neuraleq_jax.data import from_arrays
        keep = [i for i, word in enumerate(dataset.words) if word in data.words]
        dataset = from_arrays(dataset.settings[keep], [dataset.words[i] for i in keep],
                              vocabulary=data.words, layout=dataset.layout)
    return dataset


def _audealize(data: DataConfig) -> EQDataset:
    from neuraleq_jax.crowd import audealize_dataset
    dataset, _read, _fit = audealize_dataset(data.path, per_word=data.per_word,
                                             seed=data.data_seed, spread_scale=data.spread_scale)
    return dataset


def _crowd(data: DataConfig) -> EQDataset:
    from neuraleq_jax.crowd import crowd_dataset
    return crowd_dataset(data.path, None, per_word=data.per_word, min_examples=data.min_examples,
                         seed=data.data_seed, spread_scale=data.spread_scale)


# dataset name → loader (config.DATASET_NAMES lists the same names)
DATASETS: dict[str, Callable[[DataConfig], EQDataset]] = {
    "synthetic": _synthetic, "safe": _safe, "curves": _curves, "audealize": _audealize,
    "crowd": _crowd}


def build_datasets(data: DataConfig) -> tuple[EQDataset, EQDataset | None, EQDataset | None]:
    """``(train, validation, test)`` for ``data``; split by contributor when the data has them."""
    from neuraleq_jax.data import grouped_split, stratified_split

    if data.dataset not in DATASETS:
        raise ValueError(f"unknown data.dataset {data.dataset!r}; known: {', '.join(DATASETS)}")
    dataset = DATASETS[data.dataset](data)
    split = grouped_split if dataset.contributors is not None else stratified_split
    parts = split(dataset, data.split_fractions, data.split_seed)
    parts = [p if len(p) else None for p in parts]
    return parts[0], parts[1], parts[2] if len(parts) > 2 else None


def setup_jax(distributed: DistributedConfig) -> None:
    """Configure jax before its backend starts: simulated devices, gloo, jax.distributed."""
    import jax

    if distributed.local_devices:
        jax.config.update("jax_num_cpu_devices", distributed.local_devices)
    cache = os.environ.get("NEURALEQ_JAX_CACHE_DIR",
                           str(Path.home() / ".cache" / "neuraleq_jax" / "xla"))
    if cache.lower() != "off":  # a resumed or repeated run skips most of its compile time
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if distributed.enabled:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=distributed.coordinator_address,
                                   num_processes=distributed.num_processes,
                                   process_id=distributed.process_id)


def prepare_workdir(workdir: Path, config: ExperimentConfig) -> None:
    """Store ``config`` in ``workdir``, or check it against the one already there."""
    path = workdir / CONFIG_FILE
    if path.is_file():
        previous = config_lib.load_json(path)
        changed = {k: v for k, v in config_lib.differences(previous, config).items()
                   if k not in RESUMABLE_CHANGES}
        if changed:
            listing = "; ".join(f"{k}: {a!r} → {b!r}" for k, (a, b) in changed.items())
            raise ValueError(f"{workdir} holds a run with another config ({listing}). Rerun "
                             f"with the same options to resume, or use a new --workdir.")
    config_lib.save_json(config, path)


def fit_word_model(params, model_config, train_config: config_lib.TrainConfig, train_ds, *,
                   seed: int = 0) -> dict:
    """The word model as a training run fits it: :func:`generation.fit_word_model` on the
    training settings with the spreads ``train_config`` asks for (``variation_ratio``,
    ``freq_q_spread``, ``fold_variations``, ``fold_margin``). The trainer, the facade and
    scripts that refit a word model all call this, so the config reaches the word model in one
    place."""
    from neuraleq_jax import generation, vocabulary
    word_model = generation.fit_word_model(params, model_config, train_ds, seed=seed,
                                           target_ratio=train_config.variation_ratio,
                                           freq_q_scale=train_config.freq_q_spread,
                                           fold_margin=(train_config.fold_margin
                                                        if train_config.fold_variations else None))
    # the words' sources and the word map travel in the bundle with the word model
    return {**word_model, **vocabulary.bundle_arrays(train_ds, word_model)}


def run(config: ExperimentConfig, workdir: str | Path, *, progress: bool = True,
        stop_after_epoch: int | None = None) -> dict:
    """Train per ``config`` in ``workdir`` (resuming), write the bundle; return the summary.

    ``stop_after_epoch`` ends the run early after that epoch (no bundle is written then),
    which is how an interrupted run is simulated.
    """
    import jax
    import numpy as np

    from neuraleq_jax import checkpoints, training

    workdir = Path(workdir).resolve()
    primary = jax.process_index() == 0
    if primary:
        workdir.mkdir(parents=True, exist_ok=True)
        prepare_workdir(workdir, config)
    train_ds, val_ds, test_ds = build_datasets(config.data)
    hook = None
    if stop_after_epoch is not None:
        hook = lambda record: record["epoch"] >= stop_after_epoch  # noqa: E731
    t0 = time.perf_counter()
    result = training.fit(train_ds, config.model, config.train, val_ds=val_ds, workdir=workdir,
                          progress=progress, on_epoch_end=hook,
                          metadata={"experiment": config.name})
    summary = {"name": config.name, "workdir": str(workdir), "epochs_done": result.epochs_done,
               "step": int(checkpoints.host_array(result.state.step)),
               "wall_s": time.perf_counter() - t0, **result.timings}
    if result.history:
        summary["last_epoch"] = result.history[-1]
    if result.epochs_done < config.train.epochs:
        summary["stopped_early"] = True
        return summary
    params = jax.tree.map(lambda x: np.asarray(checkpoints.host_array(x)), result.params)
    held_out = test_ds if test_ds is not None else val_ds
    if held_out is not None:
        summary["held_out"] = training.evaluate_dataset(params, config.model, config.train,
                                                        held_out, reference_ds=train_ds)
    if primary:
        word_model = fit_word_model(params, config.model, config.train, train_ds)
        bundle = checkpoints.ModelBundle(
            params=params, model_config=config.model, train_config=config.train,
            layout=train_ds.layout, vocabulary=train_ds.vocabulary, word_model=word_model,
            step=summary["step"],
            metadata={"experiment": config_lib.to_dict(config),
                      "held_out": summary.get("held_out"), "seed": config.train.seed})
        summary["bundle"] = str(checkpoints.save_bundle(workdir, bundle))
    return summary


def _format_summary(summary: dict) -> str:
    lines = [f"{summary['name']}: {summary['epochs_done']} epochs ({summary['step']} steps) in "
             f"{summary['wall_s']:.1f} s (compile {summary['compile_s']:.1f} s, epoch loop "
             f"{summary['train_s']:.2f} s for {summary['epochs_run']} epochs)"]
    last = summary.get("last_epoch")
    if last:
        parts = [f"train loss {last['train_loss']:.4f}"]
        if "val_loss" in last:
            parts.append(f"val loss {last['val_loss']:.4f}")
        if last.get("val_silhouette") is not None:
            parts.append(f"val silhouette {last['val_silhouette']:.3f}")
        lines.append("last epoch: " + ", ".join(parts))
    held = summary.get("held_out")
    if held:
        f = {k: ("n/a" if v is None else f"{v:.4f}") for k, v in held.items()}
        lines.append(
            f"held-out: silhouette {f['silhouette']}, response error {f['response_db']} dB RMS, "
            f"unit MSE gain {f['recon_gain']} (mean predictor {f['mean_baseline_gain']}), "
            f"freq {f['recon_freq']} ({f['mean_baseline_freq']}), Q {f['recon_q']} "
            f"({f['mean_baseline_q']})")
    if "bundle" in summary:
        lines.append(f"bundle: {summary['bundle']}")
    if summary.get("stopped_early"):
        lines.append("stopped early; rerun the same command to resume")
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> tuple[ExperimentConfig, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m neuraleq_jax.train",
        description="Train a neuraleq_jax model. Any config field can be overridden with "
                    "--section.field=value (sections: model, train, data, distributed).",
        epilog=f"presets: {', '.join(config_lib.available_presets()) or '(none found)'}")
    parser.add_argument("--config", default="synthetic",
                        help="preset name in configs/ or a path to a .py/.json config")
    parser.add_argument("--workdir", required=True, help="folder for checkpoints and metrics")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--print_config", action="store_true",
                        help="print the resolved config as JSON and exit")
    parser.add_argument("--stop_after_epoch", type=int, default=None,
                        help="stop after this epoch (simulates an interruption)")
    args, rest = parser.parse_known_args(argv)
    config = config_lib.load_preset(args.config)
    config = config_lib.apply_overrides(config, config_lib.parse_overrides(rest))
    return config, args


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        config, args = parse_args(argv)
    except (ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(config_lib.to_dict(config), indent=2))
        return 0
    try:
        setup_jax(config.distributed)
        summary = run(config, args.workdir, progress=not args.quiet,
                      stop_after_epoch=args.stop_after_epoch)
    except (ValueError, FloatingPointError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    import jax
    if jax.process_index() == 0:
        print(_format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
