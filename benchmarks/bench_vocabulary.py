"""A crowd vocabulary on CPU: training time at ``--config audealize`` and single-setting latency
at the full vocabulary.

Run: ``python -m benchmarks vocabulary [--quick]`` (or ``python -m benchmarks.bench_vocabulary``).
Reads Audealize's file from ``$NEURALEQ_AUDEALIZE`` or ``../shared/data/audealize``.

- ``training``: ``python -m neuraleq_jax.train --config audealize`` in a fresh process with an
  empty fit cache (the cold path a user runs once): wall time of the whole command (fitting every
  curve, training, the word model, the bundle), and its own split (compile, epoch loop).
  ``--quick`` trains 2 epochs on 8 settings per word.
- ``latency``: in a fresh process with synchronous CPU dispatch
  (``use_synchronous_cpu_dispatch``), ``generate_eq_from_semantic(word, variations=1)`` on the
  trained bundle, cycling through every word of the vocabulary, p50 over many calls; beside it,
  measured in turns in the same process, the same call on the 8 synthetic words and on their
  word model tiled to 400 words (:func:`tiled_word_model`), with each p50's ratio to the
  8-word one, so that growth with the vocabulary shows. ``--workdir W`` measures on an
  already trained run instead of training one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import (
    Skipped,
    figure,
    machine,
    run_module_child,
    run_training_command,
    write_json,
)

TARGET_P50_S = 50e-6
CHILD_TIMEOUT_S = 1800
SUMMARY = re.compile(
    r"in (?P<wall>[\d.]+) s \(compile (?P<compile>[\d.]+) s, epoch loop "
    r"(?P<loop>[\d.]+) s for (?P<epochs>\d+) epochs\)"
)


def audealize_path() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "audealize"
    path = Path(os.environ.get("NEURALEQ_AUDEALIZE", default / "eqdescriptors.json"))
    if not path.is_file():
        raise Skipped(
            f"needs Audealize's file, not found at {path}: set NEURALEQ_AUDEALIZE "
            f"or fetch it with `neuraleq data fetch audealize`"
        )
    return path


def train_once(workdir: Path, quick: bool) -> dict:
    """Wall time of one cold ``--config audealize`` training command, and its own split."""
    args = [
        "--config",
        "audealize",
        f"--data.path={audealize_path()}",
        "--workdir",
        str(workdir),
        "--quiet",
    ]
    if quick:
        args += ["--train.epochs=2", "--data.per_word=8"]
    env = dict(
        os.environ,
        NEURALEQ_JAX_FIT_CACHE=str(workdir.parent / "fits"),
        NEURALEQ_JAX_CACHE_DIR="off",
    )
    wall, stdout = run_training_command(args, env, CHILD_TIMEOUT_S)
    match = SUMMARY.search(stdout)
    split = {k: float(v) for k, v in match.groupdict().items()} if match else {}
    return {
        "command_wall_s": wall,
        "fit_and_word_model_s": wall - split.get("wall", wall),
        "train_wall_s": split.get("wall"),
        "compile_s": split.get("compile"),
        "epoch_loop_s": split.get("loop"),
        "epochs": split.get("epochs"),
        "args": args,
    }


TILED_WORDS = 400


def tiled_word_model(word_model: dict, size: int, n_words: int) -> dict:
    """``word_model`` of ``size`` words grown to ``n_words`` words by repeating its words in
    order: the leading word axis ``[W, ...]`` of every array that has one, and a second axis of
    size ``W`` after it (word-pair arrays ``[W, W, ...]``), is tiled; other arrays are kept.
    Serving cost depends on the arrays' sizes, not on their values, so this measures a
    vocabulary of any size."""
    index = np.arange(n_words) % size
    tiled = {}
    for key, value in word_model.items():
        value = np.asarray(value)
        for axis in range(min(value.ndim, 2)):
            if value.shape[axis] == size and (axis == 0 or value.shape[0] == n_words):
                value = np.take(value, index, axis=axis)
        tiled[key] = value
    return tiled


def child_latency(workdir: str | None, calls: int) -> dict:
    """p50 of a single setting through the facade with synchronous dispatch, cycling through
    every word: on the trained bundle at ``workdir`` (if given), on the 8-word synthetic model
    and on that model tiled to :data:`TILED_WORDS` words, measured in turns in one process so
    that their ratios are not moved by load that comes and goes."""
    from benchmarks.bench_generation import latency
    from benchmarks.common import bench_model
    from neuraleq_jax import NeuralEQMorphingSystem, use_synchronous_cpu_dispatch
    from neuraleq_jax.data import synthetic

    use_synchronous_cpu_dispatch()
    params, config, word_model = bench_model(0)
    tiled_words = tuple(f"word{i}" for i in range(TILED_WORDS))
    systems = {
        "synthetic_8_words": NeuralEQMorphingSystem.from_params(
            params, config, word_model, synthetic.VOCABULARY
        ),
        f"synthetic_tiled_{TILED_WORDS}_words": NeuralEQMorphingSystem.from_params(
            params,
            config,
            tiled_word_model(word_model, len(synthetic.VOCABULARY), TILED_WORDS),
            tiled_words,
        ),
    }
    if workdir is not None:
        systems["full_vocabulary"] = NeuralEQMorphingSystem.load(workdir)
    rounds = 3
    samples = {name: [] for name in systems}
    for _ in range(rounds):
        for name, system in systems.items():
            words = system.vocabulary
            samples[name].append(
                latency(
                    lambda i, system=system, words=words: system.generate_eq_from_semantic(
                        words[i % len(words)], variations=1, seed=i
                    ),
                    calls // rounds,
                )
            )
    result = {
        name: dict(
            min(runs, key=lambda r: r["p50_s"]),
            words=len(systems[name].vocabulary),
            p50_per_round_s=[r["p50_s"] for r in runs],
        )
        for name, runs in samples.items()
    }
    eight = result["synthetic_8_words"]["p50_s"]
    for entry in result.values():
        entry["ratio_over_8_words"] = float(np.float64(entry["p50_s"]) / eight)
    return result


def run(quick: bool = False, workdir: str | None = None) -> dict:
    """Train (unless ``workdir`` names a trained ``--config audealize`` run), then measure."""
    if workdir is None:
        audealize_path()  # before minutes of work: Skipped without the file
    with tempfile.TemporaryDirectory(prefix="bench_vocabulary_") as folder:
        training = None
        if workdir is None:
            workdir = str(Path(folder) / "run")
            training = train_once(Path(workdir), quick)
        latency = run_module_child(
            "benchmarks.bench_vocabulary",
            ["--child-latency", workdir, "--calls", str(300 if quick else 3000)],
            timeout=CHILD_TIMEOUT_S,
        )
    full, tiled = latency["full_vocabulary"], latency[f"synthetic_tiled_{TILED_WORDS}_words"]
    figures = []
    if training is not None:
        figures += [
            figure("audealize training command (cold fit cache)", training["command_wall_s"], "s"),
            figure("audealize epoch loop", training["epoch_loop_s"], "s"),
        ]
    for entry, label in ((full, "trained"), (tiled, "synthetic tiled")):
        figures += [
            figure(
                f"facade latency p50 at {entry['words']} words, {label} (sync dispatch)",
                entry["p50_s"],
                "s",
                target=TARGET_P50_S,
                goal="<=",
                source="issue: p50 <= 50 us at 400 words",
            ),
            figure(
                f"latency ratio, {entry['words']} words ({label}) / 8 words",
                entry["ratio_over_8_words"],
                "ratio",
            ),
        ]
    figures.append(
        figure(
            "facade latency p50 at 8 words (sync dispatch)",
            latency["synthetic_8_words"]["p50_s"],
            "s",
            target=TARGET_P50_S,
            goal="<=",
            source="issue: p50 <= 50 us",
        )
    )
    return {
        "benchmark": "vocabulary",
        "machine": machine(),
        "quick": quick,
        "training": training,
        "latency": latency,
        "figures": figures,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs, 8 settings per word")
    parser.add_argument("--no-save", action="store_true", help="print only")
    parser.add_argument("--child-latency", default=None, help="internal: a trained workdir")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument(
        "--workdir",
        default=None,
        help="a trained --config audealize workdir: measure latency on it and "
        "skip the training figure",
    )
    args = parser.parse_args(argv)
    if args.child_latency:
        print(json.dumps(child_latency(args.child_latency, args.calls)))
        return
    result = run(quick=args.quick, workdir=args.workdir)
    print(json.dumps({"training": result["training"], "latency": result["latency"]}, indent=2))
    if not args.no_save:
        print(
            "wrote",
            write_json(result, "vocabulary_quick.json" if args.quick else "vocabulary.json"),
        )


if __name__ == "__main__":
    main()
