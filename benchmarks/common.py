"""Shared helpers for benchmark scripts: timing, machine description, atomic JSON output."""

from __future__ import annotations

import datetime
import functools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from neuraleq_jax.fileio import atomic_write_text

RESULTS_DIR = Path(__file__).resolve().parent / "results"


class Skipped(Exception):
    """Raised by a benchmark that cannot run here; its message names what is missing and how to
    get it (the runner records the benchmark as skipped, not failed)."""


def require_module(name: str, extra: str = "test"):
    """``import name``, or :class:`Skipped` naming the install that provides it."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise Skipped(f"needs {name} (pip install -e '.[{extra}]')") from None


def block(tree):
    """Wait for every array in ``tree`` (async dispatch would otherwise hide the work)."""
    return jax.block_until_ready(tree)


def time_call(fn, *args, repeats: int = 5, warmup: int = 1) -> dict:
    """Wall-clock seconds of ``fn(*args)`` after ``warmup`` calls: best and median of ``repeats``."""
    for _ in range(warmup):
        block(fn(*args))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        block(fn(*args))
        samples.append(time.perf_counter() - start)
    return {
        "best_s": float(np.min(samples)),
        "median_s": float(np.median(samples)),
        "repeats": repeats,
    }


# the CPU features that decide which matmul kernels XLA and NumPy's BLAS can use
VECTOR_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "asimd",
    "sve",
)


def cpu_description() -> dict:
    """``{"cpu_model", "vector_extensions"}`` of this machine: the model name and which of
    :data:`VECTOR_FLAGS` it has (from ``/proc/cpuinfo``; elsewhere the platform's processor name
    and an empty list, since speed figures are read against the kernels a CPU can run)."""
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                name, _, value = line.partition(":")
                name = name.strip()
                if name in ("model name", "cpu model") and model is None:
                    model = value.strip()
                elif name in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {
        "cpu_model": model or platform.processor() or platform.machine(),
        "vector_extensions": [f for f in VECTOR_FLAGS if f in flags],
    }


def machine() -> dict:
    """What the figures were measured on: date, platform, CPU model and vector extensions
    (:func:`cpu_description`), core count, Python, JAX, backend and devices."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        **cpu_description(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
    }


def standalone_main(run, name: str, doc: str | None, argv=None, summary=None) -> dict:
    """``python -m benchmarks.bench_<name> [--quick] [--no-save]``: run, print JSON, save it.

    ``summary`` picks what to print from the result (default: all of it).
    """
    import argparse

    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI smoke runs")
    parser.add_argument("--no-save", action="store_true", help="print only; write no JSON")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    print(json.dumps(result if summary is None else summary(result), indent=2))
    if not args.no_save:
        write_json(result, f"{name}_quick.json" if args.quick else f"{name}.json")
    return result


def run_module_child(
    module: str, args: list[str], *, timeout: float, env: dict[str, str] | None = None
) -> dict:
    """Run ``python -m module *args`` in a fresh process from the repository root and return
    the JSON object on the last line of its stdout (a fresh process: its own peak memory, its
    own JAX options). ``env`` adds variables to this process's environment."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    child_env = dict(os.environ, **(env or {}))
    child_env["PYTHONPATH"] = os.pathsep.join(
        [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        cwd=root,
        env=child_env,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_json(result: dict, name: str, directory: Path = RESULTS_DIR) -> Path:
    """Write ``result`` atomically as ``directory/name``; returns the path."""
    return atomic_write_text(directory / name, json.dumps(result, indent=2))


# ------------------------------------------------------------------ figures beside their targets


def figure(
    name: str,
    value: float,
    unit: str,
    *,
    target: float | None = None,
    goal: str | None = None,
    source: str = "",
) -> dict:
    """One reported figure. ``goal`` is ``"<="`` (smaller is better: the figure should be at most
    ``target``) or ``">="`` (the figure should be at least ``target``); the runner adds the
    ratio ``value / target`` and whether the goal is met."""
    if (target is None) != (goal is None):
        raise ValueError(f"figure {name!r}: give both target and goal, or neither")
    if goal not in (None, "<=", ">="):
        raise ValueError(f"figure {name!r}: goal must be '<=' or '>=', got {goal!r}")
    return {
        "name": name,
        "value": None if value is None else float(value),
        "unit": unit,
        "target": None if target is None else float(target),
        "goal": goal,
        "source": source,
    }


# ------------------------------------------------------------------ the decoder's FLOPs and roofline


def decoder_matmul_shapes(config) -> list[tuple[int, int]]:
    """``(in, out)`` of every dense layer of the residual decoder for a ``ModelConfig``: per block
    the two denses and, where the width changes, the skip projection; then the three heads."""
    shapes, width_in = [], config.latent_dim
    for width in config.decoder_widths:
        shapes += [(width_in, width), (width, width)]
        if width_in != width:
            shapes.append((width_in, width))
        width_in = width
    return shapes + [(width_in, config.n_bands)] * 3


def decoder_flops_per_setting(config) -> int:
    """Matmul FLOPs (2 per multiply-add) the decoder spends on one setting; the elementwise work
    (layer norms, GELU, biases, tanh heads) is left out, so achieved FLOP/s are conservative."""
    return sum(2 * k * n for k, n in decoder_matmul_shapes(config))


def _best_seconds(fn, repeats: int) -> float:
    block(fn())
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        block(fn())
        best = min(best, time.perf_counter() - start)
    return float(best)


def roofline_rows(quick: bool = False) -> tuple[int, ...]:
    """Row counts the roofline is measured at: cache-sized to memory-sized on a CPU; an
    accelerator reaches its peak only on much taller matrices."""
    if quick:
        return (1024, 4096)
    rows = (256, 1024, 4096, 16_384, 65_536)
    return rows if jax.default_backend() == "cpu" else rows + (262_144, 1_048_576)


def matmul_roofline(config, rows=(256, 1024, 4096, 16384, 65536), repeats: int = 7) -> dict:
    """The FLOP/s that plain matrix multiplies of the decoder's own shapes reach on this machine.

    For each row count ``R`` the decoder's layer shapes ``[R, in] @ [in, out]`` are timed one by
    one (best of ``repeats``) with NumPy and with a jitted ``jnp.matmul``; the chain's FLOP/s is
    the total FLOPs over the summed times. The roofline is the best chain over ``R`` and over both
    libraries: the highest rate at which this machine runs exactly the decoder's matmuls.
    """
    shapes = decoder_matmul_shapes(config)
    rng = np.random.default_rng(0)
    matmul = jax.jit(jnp.matmul)
    per_rows = []
    for r in rows:
        flops = seconds_np = seconds_jax = 0.0
        for k, n in shapes:
            a = rng.standard_normal((r, k), dtype=np.float32)
            b = rng.standard_normal((k, n), dtype=np.float32)
            out = np.empty((r, n), np.float32)
            a_dev, b_dev = jax.device_put(a), jax.device_put(b)
            flops += 2.0 * r * k * n
            seconds_np += _best_seconds(lambda a=a, b=b, out=out: np.matmul(a, b, out=out), repeats)
            seconds_jax += _best_seconds(
                lambda a_dev=a_dev, b_dev=b_dev: matmul(a_dev, b_dev), repeats
            )
        per_rows.append(
            {
                "rows": int(r),
                "numpy_flops_per_s": flops / seconds_np,
                "jax_flops_per_s": flops / seconds_jax,
            }
        )
    best_np = max(p["numpy_flops_per_s"] for p in per_rows)
    best_jax = max(p["jax_flops_per_s"] for p in per_rows)
    return {
        "shapes": [list(s) for s in shapes],
        "per_rows": per_rows,
        "numpy_flops_per_s": best_np,
        "jax_flops_per_s": best_jax,
        "roofline_flops_per_s": max(best_np, best_jax),
    }


# ------------------------------------------------------------------ memory


def peak_rss_bytes() -> int:
    """This process's peak resident set size (VmHWM), in bytes."""
    try:
        with open("/proc/self/status") as stream:
            for line in stream:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    # no /proc: ru_maxrss (KiB on Linux, bytes on macOS), which after fork + exec can include the
    # parent's peak
    import resource
    import sys

    scale = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def rss_bytes() -> int:
    """This process's current resident set size, in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as stream:
            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


# ------------------------------------------------------------------ a model to benchmark


@functools.lru_cache(maxsize=4)
def bench_model(epochs: int = 0, seed: int = 0):
    """``(params, model_config, word_model)`` for benchmarks, cached per process.

    ``epochs=0``: freshly initialised parameters (speed does not depend on the weights);
    otherwise trained for ``epochs`` on the synthetic set (accuracy figures need real weights).
    The word model is fitted on the synthetic set in both cases.
    """
    from neuraleq_jax import generation
    from neuraleq_jax.config import TrainConfig
    from neuraleq_jax.data import synthetic
    from neuraleq_jax.model import networks
    from neuraleq_jax.training import trainer

    config = networks.ModelConfig()
    dataset = synthetic.make_synthetic(per_word=70, seed=seed)
    if epochs:
        params = trainer.fit(dataset, config, TrainConfig(epochs=epochs, seed=seed)).params
    else:
        params = networks.init_params(config, jax.random.key(seed))
    return params, config, generation.fit_word_model(params, config, dataset)


def save_model(path: Path, params, word_model: dict) -> Path:
    """Parameters and word model as one ``.npz`` (no pickle), for a benchmark subprocess."""
    from flax.traverse_util import flatten_dict

    arrays = {"params/" + "/".join(k): np.asarray(v) for k, v in flatten_dict(params).items()}
    arrays.update({"word_model/" + k: np.asarray(v) for k, v in word_model.items()})
    np.savez(path, **arrays)
    return Path(path)


def load_model(path: Path):
    """Inverse of :func:`save_model`: ``(params, word_model)``."""
    from flax.traverse_util import unflatten_dict

    with np.load(path, allow_pickle=False) as stored:
        params = unflatten_dict(
            {
                tuple(k.split("/")[1:]): jnp.asarray(stored[k])
                for k in stored.files
                if k.startswith("params/")
            }
        )
        word_model = {
            k.split("/", 1)[1]: stored[k] for k in stored.files if k.startswith("word_model/")
        }
    return params, word_model


def run_training_command(args, env, timeout_s: float) -> tuple[float, str]:
    """Wall seconds and stdout of ``python -m neuraleq_jax.train ARGS`` in a fresh process (the
    whole command, as a user runs it); raises with the tail of its stderr if it fails."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "neuraleq_jax.train", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout_s,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"training command failed:\n{done.stderr[-4000:]}")
    return wall, done.stdout
