"""Exploration at scale: 10 million settings, throughput and peak resident memory.

Run: ``python -m benchmarks explore [--quick]`` (or ``python -m benchmarks.bench_explore``).

Each mode runs in a fresh subprocess, so its peak RSS (the child's own ``VmHWM`` from
``/proc/self/status``) is the exploration's alone: Python, JAX, the compiled programs, the model
and whatever the exploration keeps. (``getrusage(RUSAGE_CHILDREN).ru_maxrss`` would not do: Linux
carries the parent's peak RSS at ``fork`` into the child's ``ru_maxrss`` across ``exec``, so a
child of a 2.5 GB runner reports 2.5 GB however little it uses.) Compilation happens in a warm-up call
before the clock starts; the timed part includes the transfer of every setting to the host.
The child sees as many CPU devices as this process (see ``python -m benchmarks --cpu-devices``).

Modes:
  stream  ``generation.explore_chunks``: settings arrive as host chunks; the consumer keeps only
          a running summary (count, per-parameter min / max / mean) — the way to explore 10M.
  gather  ``generation.explore``: all ``n x 15`` float32 settings returned as one host array
          (600 MB for 10M), to show what holding the result costs.
  novel   ``generation.explore_novel``: the ``k`` most novel settings, chosen on the device by a
          running top-k (only ``k`` settings come back); novelty scoring costs more than decoding.
  store   ``writer.explore_to_store``: 20M settings streamed into a Zarr store on disk
          (settings only, the CLI's default). Compared with ``stream`` at the same size, run just
          before and just after it (the mean of the two), so that a change in the machine's load
          during the run weighs on both sides; the store's chunk files are removed afterwards.
          ``$NEURALEQ_BENCH_STORE_DIR`` chooses the folder (default: the system's temporary one).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

N_SETTINGS = 10_000_000
QUICK_N = 200_000
NOVEL_N, QUICK_NOVEL_N, NOVEL_K = 1_000_000, 50_000, 100
TARGET_FRACTION = 0.40  # goal: >= 40 % of the roofline for 10M settings
TARGET_RSS = 1e9  # and peak RSS <= 1 GB
STORE_N, QUICK_STORE_N = 20_000_000, 200_000
TARGET_STORE_RATIO = 0.90  # issue: a store keeps >= 90 % of the in-memory exploration's speed
CHILD_TIMEOUT_S = 1800


# ------------------------------------------------------------------ the child process


def _child(args) -> dict:
    if args.cpu_devices:
        import jax

        jax.config.update("jax_num_cpu_devices", args.cpu_devices)
    import jax

    from benchmarks.common import load_model, peak_rss_bytes, rss_bytes
    from neuraleq_jax import generation
    from neuraleq_jax.model import networks, paramspace

    config = networks.ModelConfig()
    params, word_model = load_model(args.model)
    key = jax.random.key(7)
    layout = paramspace.DEFAULT_LAYOUT
    kwargs = {} if args.chunk is None else {"chunk": args.chunk}

    def stream(n):
        count, low, high, total = 0, np.inf, -np.inf, 0.0
        for part in generation.explore_chunks(params, config, word_model, key, n, **kwargs):
            count += len(part)
            low, high = np.minimum(low, part.min(0)), np.maximum(high, part.max(0))
            total = total + part.sum(0, dtype=np.float64)
        return count, low, high, total / count

    def gather(n):
        settings = generation.explore(params, config, word_model, key, n, **kwargs)
        return (len(settings), settings.min(0), settings.max(0), settings.mean(0, dtype=np.float64))

    def novel(n):
        settings, scores = generation.explore_novel(
            params, config, word_model, key, n, args.k, **kwargs
        )
        settings = np.asarray(settings)
        return n, settings.min(0), settings.max(0), np.asarray(scores, np.float64)

    def store(n, name="store"):
        from neuraleq_jax.explore import store as explore_store
        from neuraleq_jax.explore import writer

        path = Path(args.store_dir) / f"{name}_{n}.zarr"
        writer.explore_to_store(path, params, config, word_model, key, n, **kwargs)
        settings = explore_store.open_store(path).settings
        ends = np.concatenate([settings[:1000], settings[max(0, n - 1000) :]])  # read back
        return n, ends.min(0), ends.max(0), ends.mean(0, dtype=np.float64)

    body = {"stream": stream, "gather": gather, "novel": novel, "store": store}[args.mode]
    # compile outside the clock: streaming uses one program per chunk size (the last chunk is
    # computed whole), the novelty scan one program per n
    chunk = args.chunk or generation.default_explore_chunk()
    warmup = args.n if args.mode == "novel" else min(args.n, chunk)
    body(warmup, "warmup") if args.mode == "store" else body(warmup)
    rss_before = rss_bytes()
    start, cpu_start = time.perf_counter(), time.process_time()
    count, low, high, extra = body(args.n)
    seconds = time.perf_counter() - start
    # CPU seconds of every thread of the child: less sensitive than wall time to other load
    cpu_seconds = time.process_time() - cpu_start
    inside = bool(
        np.all(low >= layout.lower - 1e-3)
        and np.all(high <= layout.upper + 1e-3)
        and np.all(np.isfinite(low))
        and np.all(np.isfinite(high))
    )
    return {
        "mode": args.mode,
        "n": args.n,
        "count": int(count),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "settings_per_s": args.n / seconds,
        "rss_after_warmup_bytes": rss_before,
        "peak_rss_bytes": peak_rss_bytes(),
        "all_inside_ranges": inside,
        "devices": [str(d) for d in jax.devices()],
        "summary": {"min": np.asarray(low).tolist(), "max": np.asarray(high).tolist()},
    }


def run_child(
    model_path: Path,
    mode: str,
    n: int,
    *,
    chunk: int | None = None,
    k: int = NOVEL_K,
    cpu_devices: int = 0,
    store_dir: str = "",
) -> dict:
    """Run one mode in a subprocess and return its report."""
    from benchmarks.common import run_module_child

    args = [
        "--child",
        "--model",
        str(model_path),
        "--mode",
        mode,
        "--n",
        str(n),
        "--k",
        str(k),
        "--cpu-devices",
        str(cpu_devices),
        "--store-dir",
        store_dir,
    ]
    if chunk is not None:
        args += ["--chunk", str(chunk)]
    # on a GPU the parent already holds device memory: the child allocates as it goes
    env = {
        "XLA_PYTHON_CLIENT_PREALLOCATE": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    }
    return run_module_child("benchmarks.bench_explore", args, timeout=CHILD_TIMEOUT_S, env=env)


# ------------------------------------------------------------------ the benchmark


def store_comparison(model_path: Path, n: int, cpu_devices: int = 0) -> dict:
    """``stream``, ``store``, ``stream`` at ``n`` settings; the store's speed over the streams'
    mean speed."""
    parent = os.environ.get("NEURALEQ_BENCH_STORE_DIR") or None
    with tempfile.TemporaryDirectory(dir=parent, prefix="explore_store_") as store_dir:
        before = run_child(model_path, "stream", n, cpu_devices=cpu_devices)
        store = run_child(model_path, "store", n, cpu_devices=cpu_devices, store_dir=store_dir)
        after = run_child(model_path, "stream", n, cpu_devices=cpu_devices)
        store["store_bytes"] = sum(
            p.stat().st_size for p in Path(store_dir).rglob("*") if p.is_file()
        )
    in_memory = 0.5 * (before["settings_per_s"] + after["settings_per_s"])
    in_memory_cpu = 0.5 * (before["cpu_seconds"] + after["cpu_seconds"])
    return {
        "n": n,
        "store": store,
        "stream_before": before,
        "stream_after": after,
        "in_memory_settings_per_s": in_memory,
        "store_over_in_memory": store["settings_per_s"] / in_memory,
        "store_cpu_seconds_over_in_memory": store["cpu_seconds"] / in_memory_cpu,
    }


def store_figures(comparison: dict, full: bool) -> list[dict]:
    from benchmarks.common import figure

    n, store = comparison["n"], comparison["store"]
    return [
        figure(
            f"explore store {n:,}: settings/s over in-memory streaming",
            comparison["store_over_in_memory"],
            "fraction",
            target=TARGET_STORE_RATIO if full else None,
            goal=">=" if full else None,
            source="issue: >= 90 % for 20M" if full else "",
        ),
        figure(
            f"explore store {n:,}: peak RSS",
            store["peak_rss_bytes"],
            "bytes",
            target=TARGET_RSS if full else None,
            goal="<=" if full else None,
            source="issue: <= 1 GB for 20M" if full else "",
        ),
        figure(
            f"explore store {n:,}: CPU seconds over in-memory streaming's",
            comparison["store_cpu_seconds_over_in_memory"],
            "fraction",
        ),
        figure(f"explore store {n:,}: settings/s", store["settings_per_s"], "settings/s"),
        figure(
            f"explore store {n:,}: fraction of roofline", store["fraction_of_roofline"], "fraction"
        ),
    ]


def run(quick: bool = False) -> dict:
    import jax

    from benchmarks.common import (
        bench_model,
        decoder_flops_per_setting,
        figure,
        machine,
        matmul_roofline,
        roofline_rows,
        save_model,
    )

    params, config, word_model = bench_model(epochs=0)
    # the child sees the same devices as this process (on CPU: as many CPU devices)
    cpu_devices = len(jax.devices()) if jax.default_backend() == "cpu" else 0
    flops = float(decoder_flops_per_setting(config))
    rows = roofline_rows(quick)
    n = QUICK_N if quick else N_SETTINGS
    novel_n = QUICK_NOVEL_N if quick else NOVEL_N
    roof_before = matmul_roofline(config, rows)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = save_model(Path(tmp) / "model.npz", params, word_model)
        modes = {
            mode: run_child(model_path, mode, size, cpu_devices=cpu_devices)
            for mode, size in (("stream", n), ("gather", n), ("novel", novel_n))
        }
        store = store_comparison(model_path, QUICK_STORE_N if quick else STORE_N, cpu_devices)
    roof_after = matmul_roofline(config, rows)
    roofline = max(roof_before["roofline_flops_per_s"], roof_after["roofline_flops_per_s"])
    for report in [*modes.values(), store["store"], store["stream_before"], store["stream_after"]]:
        report["decoder_flops_per_s"] = flops * report["settings_per_s"]
        report["fraction_of_roofline"] = report["decoder_flops_per_s"] / roofline

    full = n >= N_SETTINGS
    figures = []
    for mode in ("stream", "gather"):
        r = modes[mode]
        figures += [
            figure(
                f"explore {mode} {n:,}: fraction of roofline",
                r["fraction_of_roofline"],
                "fraction",
                target=TARGET_FRACTION if full else None,
                goal=">=" if full else None,
                source="issue: >= 40 % for 10M" if full else "",
            ),
            figure(
                f"explore {mode} {n:,}: peak RSS",
                r["peak_rss_bytes"],
                "bytes",
                target=TARGET_RSS if full else None,
                goal="<=" if full else None,
                source="issue: <= 1 GB for 10M" if full else "",
            ),
            figure(f"explore {mode} {n:,}: settings/s", r["settings_per_s"], "settings/s"),
        ]
    r = modes["novel"]
    figures += [
        figure(
            f"explore novel top-{NOVEL_K} of {novel_n:,}: settings/s",
            r["settings_per_s"],
            "settings/s",
        ),
        figure(
            f"explore novel top-{NOVEL_K} of {novel_n:,}: peak RSS", r["peak_rss_bytes"], "bytes"
        ),
    ]
    figures += store_figures(store, full=not quick)
    return {
        "benchmark": "explore",
        "machine": machine(),
        "quick": quick,
        "decoder_matmul_flops_per_setting": flops,
        "roofline": {"flops_per_s": roofline, "before": roof_before, "after": roof_after},
        "modes": modes,
        "store": store,
        "figures": figures,
    }


def run_store_only(n: int) -> dict:
    """The store comparison alone (``--store-only N``), with its roofline figures."""
    import jax

    from benchmarks.common import (
        bench_model,
        decoder_flops_per_setting,
        machine,
        matmul_roofline,
        roofline_rows,
        save_model,
    )

    params, config, word_model = bench_model(epochs=0)
    cpu_devices = len(jax.devices()) if jax.default_backend() == "cpu" else 0
    flops = float(decoder_flops_per_setting(config))
    roof = matmul_roofline(config, roofline_rows(n < STORE_N))
    with tempfile.TemporaryDirectory() as tmp:
        model_path = save_model(Path(tmp) / "model.npz", params, word_model)
        store = store_comparison(model_path, n, cpu_devices)
    for report in (store["store"], store["stream_before"], store["stream_after"]):
        report["decoder_flops_per_s"] = flops * report["settings_per_s"]
        report["fraction_of_roofline"] = (
            report["decoder_flops_per_s"] / roof["roofline_flops_per_s"]
        )
    return {
        "benchmark": "explore_store",
        "machine": machine(),
        "n": n,
        "roofline": roof,
        "store": store,
        "figures": store_figures(store, n >= STORE_N),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI smoke runs")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--mode",
        choices=("stream", "gather", "novel", "store"),
        default="stream",
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--n", type=int, default=QUICK_N, help=argparse.SUPPRESS)
    parser.add_argument("--k", type=int, default=NOVEL_K, help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cpu-devices", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--store-dir", default="", help=argparse.SUPPRESS)
    parser.add_argument(
        "--store-only",
        type=int,
        default=0,
        metavar="N",
        help="run only the store comparison at N settings (prints its JSON)",
    )
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args)))
        return
    from benchmarks.common import write_json

    if args.store_only:
        result = run_store_only(args.store_only)
        write_json(result, f"explore_store_{args.store_only}_{result['machine']['backend']}.json")
        print(json.dumps(result["figures"], indent=2))
        return
    result = run(quick=args.quick)
    write_json(result, "explore_quick.json" if args.quick else "explore.json")
    print(json.dumps(result["figures"], indent=2))


if __name__ == "__main__":
    main()
