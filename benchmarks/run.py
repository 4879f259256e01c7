"""The benchmark suite's one entry point: run every benchmark (or the named ones), write one JSON.

    python -m benchmarks                       # everything, full size (minutes)
    python -m benchmarks throughput explore    # only these
    python -m benchmarks --quick --no-save     # CI smoke run: small sizes, nothing written

Each benchmark is a module ``benchmarks/bench_<name>.py`` with ``run(quick: bool) -> dict``. A
result may carry its own ``"figures"`` (see :func:`benchmarks.common.figure`); figures of modules
that do not are picked out of their result by :data:`TARGETS`. Every figure is printed beside its
target as the ratio ``figure / target`` and written, with the machine, devices, JAX version and
date, to ``benchmarks/results/run_<UTC time>_<backend>.json`` (``..._quick.json`` for --quick).
A benchmark that raises is recorded with its traceback, the others still run, and the exit status
is 1. One that needs what this install or machine lacks (a test extra such as httpx2, Audealize's
file) raises :class:`benchmarks.common.Skipped`: it is recorded as skipped with the reason, and
the exit status is 0 when everything that could run ran.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import math
import os
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python benchmarks/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCHEMA = "neuraleq_jax.benchmarks/1"
# run order: cheap and independent first; explore (a 10M-setting subprocess) last
BENCHMARKS = (
    "data",
    "curves",
    "generation",
    "server",
    "throughput",
    "training",
    "vocabulary",
    "explore",
)

# Seed figures (the original design's measurements) and the targets.
SEED_PER_SETTING_S = 0.80e-3
SEED_1000_VARIATIONS_S = 255e-3
SEED_50_EPOCHS_S = 11.9

# Figures of modules that do not report their own "figures": (benchmark, dotted path into its
# result, figure name, unit, target, goal, source). A path that is absent is reported as missing.
TARGETS = (
    (
        "data",
        "synthetic_generation.settings_per_s",
        "synthetic settings/s",
        "settings/s",
        None,
        None,
        "",
    ),
    (
        "data",
        "response_reference_grid.responses_per_s",
        "responses/s (256-point grid)",
        "responses/s",
        None,
        None,
        "",
    ),
    (
        "curves",
        "results.default.curves_per_s",
        "40-band curve fits/s (default options)",
        "curves/s",
        None,
        None,
        "",
    ),
    ("curves", "results.default.rms_db_max", "curve fit, max RMS error", "dB", None, None, ""),
    (
        "generation",
        "facade_latency.p50_s",
        "facade latency p50 (1 setting)",
        "s",
        SEED_PER_SETTING_S,
        "<=",
        "seed 0.80 ms per setting",
    ),
    (
        "generation",
        "facade_latency.p50_s",
        "facade latency p50 (1 setting)",
        "s",
        50e-6,
        "<=",
        "issue: p50 <= 50 us",
    ),
    (
        "generation",
        "core_latency.p50_s",
        "core latency p50 (1 setting)",
        "s",
        SEED_PER_SETTING_S,
        "<=",
        "seed 0.80 ms per setting",
    ),
    ("generation", "facade_latency.p90_s", "facade latency p90 (1 setting)", "s", None, None, ""),
    ("generation", "facade_latency.p99_s", "facade latency p99 (1 setting)", "s", None, None, ""),
    ("generation", "core_latency.p90_s", "core latency p90 (1 setting)", "s", None, None, ""),
    ("generation", "core_latency.p99_s", "core latency p99 (1 setting)", "s", None, None, ""),
    (
        "generation",
        "variations_1000.p50_s",
        "1000 variations of one word",
        "s",
        SEED_1000_VARIATIONS_S,
        "<=",
        "seed 255 ms",
    ),
    (
        "generation",
        "variations_1000.p50_s",
        "1000 variations of one word",
        "s",
        1e-3,
        "<=",
        "issue: <= 1 ms",
    ),
    ("generation", "morph_10.p50_s", "10-step morph", "s", None, None, ""),
    (
        "generation",
        "synchronous_dispatch.facade_latency.p50_s",
        "facade latency p50 (1 setting), synchronous CPU dispatch",
        "s",
        50e-6,
        "<=",
        "issue: p50 <= 50 us",
    ),
    (
        "generation",
        "synchronous_dispatch.facade_latency.p99_s",
        "facade latency p99 (1 setting), synchronous CPU dispatch",
        "s",
        None,
        None,
        "",
    ),
    (
        "generation",
        "synchronous_dispatch.variations_1000.p50_s",
        "1000 variations of one word, synchronous CPU dispatch",
        "s",
        1e-3,
        "<=",
        "issue: <= 1 ms",
    ),
    (
        "generation",
        "decoder_1000_roofline.matmul_floor_s",
        "1000 variations: the decoder's matmuls at the roofline",
        "s",
        None,
        None,
        "",
    ),
    (
        "generation",
        "decoder_1000_roofline.fraction_of_roofline",
        "1000 variations, fraction of the decoder's matmul roofline",
        "fraction",
        0.60,
        ">=",
        "issue: >= 60 %",
    ),
    (
        "generation",
        "decoder_1000_roofline.fraction_of_roofline_synchronous",
        "1000 variations, fraction of the decoder's matmul roofline, synchronous CPU dispatch",
        "fraction",
        0.60,
        ">=",
        "issue: >= 60 %",
    ),
    (
        "training",
        "epochs_50.train_s",
        "50 epochs, after compile",
        "s",
        SEED_50_EPOCHS_S,
        "<=",
        "seed 11.9 s",
    ),
    (
        "training",
        "epochs_50.train_s",
        "50 epochs, after compile",
        "s",
        0.6,
        "<=",
        "issue: <= 0.6 s after compile",
    ),
    ("training", "epochs_50.compile_s", "50 epochs, compile", "s", None, None, ""),
)


def _lookup(result: dict, path: str):
    value = result
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def collect_figures(name: str, result: dict) -> list[dict]:
    """The figures of one benchmark's result, each with ``ratio`` and ``meets`` filled in."""
    from benchmarks.common import figure

    figures = [dict(f) for f in result.get("figures", [])]
    if not figures:
        for bench, path, label, unit, target, goal, source in TARGETS:
            if bench == name:
                figures.append(
                    dict(
                        figure(
                            label,
                            _lookup(result, path),
                            unit,
                            target=target,
                            goal=goal,
                            source=source,
                        ),
                        path=path,
                    )
                )
    for f in figures:
        f["benchmark"] = name
        value, target = f.get("value"), f.get("target")
        usable = value is not None and target not in (None, 0) and math.isfinite(value)
        f["ratio"] = value / target if usable else None
        if f["ratio"] is None or f.get("goal") is None:
            f["meets"] = None
        else:
            f["meets"] = value <= target if f["goal"] == "<=" else value >= target
    return figures


def _format(value, unit: str) -> str:
    if value is None:
        return "missing"
    if unit == "s":
        for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
            if abs(value) >= scale or suffix == "us":
                return f"{value / scale:.3g} {suffix}"
    if unit == "FLOP/s":
        return f"{value / 1e9:.3g} GFLOP/s"
    if unit == "fraction":
        return f"{100 * value:.1f} %"
    if unit == "bytes":
        return f"{value / 2**20:.0f} MiB"
    if abs(value) >= 1e4:
        return f"{value:.3g} {unit}".strip()
    return f"{value:.4g} {unit}".strip()


def table(figures: list[dict]) -> str:
    """A plain-text table: benchmark, figure, value, target, ratio (figure / target), goal met."""
    rows = [("benchmark", "figure", "value", "target", "ratio", "ok")]
    for f in figures:
        target = "" if f.get("target") is None else f"{f['goal']} {_format(f['target'], f['unit'])}"
        if f.get("source"):
            target += f"  ({f['source']})"
        ratio = "" if f.get("ratio") is None else f"{f['ratio']:.3g}"
        ok = {True: "yes", False: "NO", None: ""}[f.get("meets")]
        rows.append((f["benchmark"], f["name"], _format(f["value"], f["unit"]), target, ratio, ok))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not on every platform
        return None


def run_suite(names=None, *, quick: bool = False, log=print) -> dict:
    """Run the named benchmarks (all when ``names`` is empty) and return the run's record."""
    import jax

    from benchmarks.common import Skipped, machine

    names = list(names or BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    record = {
        "schema": SCHEMA,
        "command": " ".join(["python -m benchmarks"] + sys.argv[1:]),
        "quick": bool(quick),
        "machine": machine(),
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "benchmarks": {},
        "figures": [],
    }
    start = time.perf_counter()
    for name in names:
        log(f"[benchmarks] {name}{' (quick)' if quick else ''} ...", flush=True)
        began = time.perf_counter()
        load_before = _loadavg()
        entry = {}
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            result = module.run(quick=quick)
            entry = {"status": "ok", "result": result}
            record["figures"] += collect_figures(name, result)
        except Skipped as reason:  # an extra or data set this install lacks
            entry = {"status": "skipped", "reason": str(reason)}
            log(f"[benchmarks] {name} skipped: {reason}", flush=True)
        except Exception:  # one failing benchmark must not hide the others' figures
            entry = {"status": "error", "error": traceback.format_exc()}
            log(entry["error"], flush=True)
        entry["wall_s"] = time.perf_counter() - began
        # other processes on the machine lower every figure: keep the load beside them
        entry["loadavg_before"], entry["loadavg_after"] = load_before, _loadavg()
        record["benchmarks"][name] = entry
        log(
            f"[benchmarks] {name}: {entry['status']} in {entry['wall_s']:.1f} s (load average "
            f"{entry['loadavg_before']} -> {entry['loadavg_after']})",
            flush=True,
        )
    record["wall_s"] = time.perf_counter() - start
    return record


def result_name(record: dict) -> str:
    """``run_<UTC time>_<backend>[_quick].json``."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = "_quick" if record["quick"] else ""
    return f"run_{stamp}_{record['machine']['backend']}{suffix}.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="name",
        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, for a CI smoke run (figures are not comparable)",
    )
    parser.add_argument("--no-save", action="store_true", help="print only; write no JSON")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for the JSON (default: benchmarks/results)",
    )
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=0,
        metavar="N",
        help="JAX CPU devices to create (default 0: JAX's default, one; the "
        "library keeps a CPU batch on one device, whose threads use every "
        "core)",
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")

    if args.cpu_devices < 0:
        parser.error(f"--cpu-devices must be >= 0, got {args.cpu_devices}")
    if args.cpu_devices:
        import jax

        try:  # only possible before JAX has created its CPU client
            jax.config.update("jax_num_cpu_devices", args.cpu_devices)
        except RuntimeError as error:
            print(f"[benchmarks] --cpu-devices ignored: {error}", file=sys.stderr)

    from benchmarks.common import RESULTS_DIR, write_json

    record = run_suite(args.names, quick=args.quick)
    print()
    print(table(record["figures"]))
    failed = [n for n, e in record["benchmarks"].items() if e["status"] == "error"]
    skipped = [f"{n} ({e['reason']})" for n, e in record["benchmarks"].items() if "reason" in e]
    print(
        f"\n{len(record['benchmarks'])} benchmark(s) in {record['wall_s']:.1f} s on "
        f"{record['machine']['backend']} ({len(record['devices'])} device(s)), jax "
        f"{record['jax']}"
        + (f"; skipped: {'; '.join(skipped)}" if skipped else "")
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    if not args.no_save:
        path = write_json(record, result_name(record), args.out or RESULTS_DIR)
        print(f"wrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
