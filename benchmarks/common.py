"""Shared helpers for benchmark scripts: timing, machine description, atomic JSON output."""

from __future__ import annotations

import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"


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
    return {"best_s": float(np.min(samples)), "median_s": float(np.median(samples)),
            "repeats": repeats}


def machine() -> dict:
    """What the figures were measured on."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
    }


def write_json(result: dict, name: str, directory: Path = RESULTS_DIR) -> Path:
    """Write ``result`` atomically as ``directory/name``; returns the path."""
    directory.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        json.dump(result, stream, indent=2)
    path = directory / name
    os.replace(temp, path)
    return path
