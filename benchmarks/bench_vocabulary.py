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
  trained bundle, cycling through every word of the vocabulary, p50 over many calls; beside it
  the same call on a model of the 8 synthetic words, so that growth with the vocabulary shows.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import figure, machine, run_module_child, write_json

TARGET_P50_S = 50e-6
CHILD_TIMEOUT_S = 1800
SUMMARY = re.compile(r"in (?P<wall>[\d.]+) s \(compile (?P<compile>[\d.]+) s, epoch loop "
                     r"(?P<loop>[\d.]+) s for (?P<epochs>\d+) epochs\)")


def audealize_path() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "audealize"
    path = Path(os.environ.get("NEURALEQ_AUDEALIZE", default / "eqdescriptors.json"))
    if not path.is_file():
        raise FileNotFoundError(f"Audealize's file not found at {path}: set NEURALEQ_AUDEALIZE "
                                f"or fetch it with `neuraleq data fetch audealize`")
    return path


def train_once(workdir: Path, quick: bool) -> dict:
    """Wall time of one cold ``--config audealize`` training command, and its own split."""
    args = ["--config", "audealize", f"--data.path={audealize_path()}", "--workdir",
            str(workdir), "--quiet"]
    if quick:
        args += ["--train.epochs=2", "--data.per_word=8"]
    env = dict(os.environ, NEURALEQ_JAX_FIT_CACHE=str(workdir.parent / "fits"),
               NEURALEQ_JAX_CACHE_DIR="off")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "neuraleq_jax.train", *args],
                          capture_output=True, text=True, env=env, timeout=CHILD_TIMEOUT_S)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"training failed:\n{done.stderr[-4000:]}")
    match = SUMMARY.search(done.stdout)
    split = {k: float(v) for k, v in match.groupdict().items()} if match else {}
    return {"command_wall_s": wall, "fit_and_word_model_s": wall - split.get("wall", wall),
            "train_wall_s": split.get("wall"), "compile_s": split.get("compile"),
            "epoch_loop_s": split.get("loop"), "epochs": split.get("epochs"),
            "args": args}


def child_latency(workdir: str, calls: int) -> dict:
    """p50 of a single setting through the facade, cycling through every word (this process
    dispatches synchronously); the same on an 8-word synthetic model."""
    import numpy as np

    from benchmarks.bench_generation import latency
    from benchmarks.common import bench_model
    from neuraleq_jax import NeuralEQMorphingSystem, synthetic, use_synchronous_cpu_dispatch

    use_synchronous_cpu_dispatch()
    system = NeuralEQMorphingSystem.load(workdir)
    words = system.vocabulary
    full = latency(lambda i: system.generate_eq_from_semantic(
        words[i % len(words)], variations=1, seed=i), calls)
    params, config, word_model = bench_model(0)
    small = NeuralEQMorphingSystem.from_params(params, config, word_model, synthetic.VOCABULARY)
    eight = latency(lambda i: small.generate_eq_from_semantic(
        synthetic.VOCABULARY[i % 8], variations=1, seed=i), calls)
    return {"words": len(words), "full_vocabulary": full, "synthetic_8_words": eight,
            "ratio_full_over_8": float(np.float64(full["p50_s"]) / eight["p50_s"])}


def run(quick: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_vocabulary_") as folder:
        workdir = Path(folder) / "run"
        training = train_once(workdir, quick)
        latency = run_module_child("benchmarks.bench_vocabulary",
                                   ["--child-latency", str(workdir), "--calls",
                                    str(300 if quick else 3000)], timeout=CHILD_TIMEOUT_S)
    p50 = latency["full_vocabulary"]["p50_s"]
    return {
        "benchmark": "vocabulary", "machine": machine(), "quick": quick,
        "training": training, "latency": latency,
        "figures": [
            figure("audealize training command (cold fit cache)", training["command_wall_s"],
                   "s"),
            figure("audealize epoch loop", training["epoch_loop_s"], "s"),
            figure(f"facade latency p50 at {latency['words']} words (sync dispatch)", p50, "s",
                   target=TARGET_P50_S, goal="<=", source="issue: p50 <= 50 us at 400 words"),
            figure("latency ratio, full vocabulary / 8 words", latency["ratio_full_over_8"],
                   "ratio")],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs, 8 settings per word")
    parser.add_argument("--no-save", action="store_true", help="print only")
    parser.add_argument("--child-latency", default=None, help="internal: a trained workdir")
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)
    if args.child_latency:
        print(json.dumps(child_latency(args.child_latency, args.calls)))
        return
    result = run(quick=args.quick)
    print(json.dumps({"training": result["training"], "latency": result["latency"]}, indent=2))
    if not args.no_save:
        print("wrote", write_json(result, "vocabulary_quick.json" if args.quick
                                  else "vocabulary.json"))


if __name__ == "__main__":
    main()
