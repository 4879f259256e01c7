"""Curve fitting: time and accuracy of fitting 5-band settings to 40-band curves.

The curves are responses of uniformly random in-range settings (the hardest case: Q from 0.1
to 10, bells anywhere in their ranges), so the true error is 0 and every reported error is the
optimiser's. Run: ``python -m benchmarks.bench_curves [--quick]`` (prints JSON, saves it under
results/).
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import machine, standalone_main
from neuraleq_jax.data import curves
from neuraleq_jax.model import paramspace, response

CONFIGS = {
    "default": {},  # steps 500, 32 x 64 starts
    "test": {"steps": 300},  # what tests/data/test_curves.py uses
    "few_restarts": {"steps": 300, "restarts": 4, "candidates": 1},
}


def _known_curves(n: int, seed: int) -> np.ndarray:
    unit = np.random.default_rng(seed).uniform(-1, 1, (n, 15)).astype(np.float32)
    settings = paramspace.clip(paramspace.denormalize(unit))
    return np.asarray(response.magnitude_response_db(settings, curves.CURVE_FREQS))


def _measure(gains: np.ndarray, options: dict) -> dict:
    start = time.perf_counter()
    curves.fit_curves(gains[:1], **options)  # compile (batch of 1)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    fit = curves.fit_curves(gains, **options)  # compile for the batch shape, then run
    compile_and_run_s = time.perf_counter() - start
    start = time.perf_counter()
    fit = curves.fit_curves(gains, **options)
    run_s = time.perf_counter() - start
    errors = fit.rms_db
    return {
        "options": options,
        "curves": len(gains),
        "first_call_s": first_s,
        "compile_and_run_s": compile_and_run_s,
        "run_s": run_s,
        "curves_per_s": len(gains) / run_s,
        "rms_db_max": float(errors.max()),
        "rms_db_mean": float(errors.mean()),
        "rms_db_p99": float(np.quantile(errors, 0.99)),
        "share_within_0_3_db": float(np.mean(errors <= 0.3)),
    }


def run(quick: bool = False) -> dict:
    n = 64 if quick else 512
    gains = _known_curves(n, seed=123)
    return {
        "benchmark": "curves",
        "machine": machine(),
        "results": {name: _measure(gains, options) for name, options in CONFIGS.items()},
    }


def main(argv=None):
    return standalone_main(run, "curves", __doc__, argv)


if __name__ == "__main__":
    main()
