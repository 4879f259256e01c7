"""Foundation throughput: synthetic settings generated per second, responses per second.

Run: ``python -m benchmarks.bench_data [--quick]`` (prints JSON, saves it under results/).
"""

from __future__ import annotations

import jax
import numpy as np

from benchmarks.common import machine, standalone_main, time_call
from neuraleq_jax.data import synthetic
from neuraleq_jax.model import response


def run(quick: bool = False) -> dict:
    n_settings = 100_000 if quick else 1_000_000
    n_responses = 10_000 if quick else 100_000
    per_word = n_settings // len(synthetic.VOCABULARY)
    key = jax.random.key(0)
    generate = time_call(lambda: synthetic.sample_settings(key, per_word), repeats=5)
    settings = synthetic.make_synthetic(per_word=n_responses // 8, seed=1).settings
    settings = jax.device_put(settings)
    respond = time_call(response.reference_response_db, settings, repeats=5)
    # yardstick measured in the same run: a NumPy matmul writing an output of the same size
    a = np.random.default_rng(0).standard_normal((n_responses, 15)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((15, 256)).astype(np.float32)
    matmul = time_call(lambda: a @ b, repeats=5)
    return {
        "benchmark": "data",
        "machine": machine(),
        "synthetic_generation": {
            "settings": per_word * 8,
            "seconds": generate["best_s"],
            "settings_per_s": per_word * 8 / generate["best_s"],
        },
        "response_reference_grid": {
            "settings": n_responses,
            "points": 256,
            "seconds": respond["best_s"],
            "responses_per_s": n_responses / respond["best_s"],
            "numpy_matmul_same_output_seconds": matmul["best_s"],
        },
    }


def main(argv=None):
    return standalone_main(run, "data", __doc__, argv)


if __name__ == "__main__":
    main()
