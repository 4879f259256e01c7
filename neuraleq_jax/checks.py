"""Checks of scalar arguments shared by the facade, the baseline, audio and the command line.

Each returns the value as a plain Python ``int`` or ``float`` or raises ``ValueError`` with one
line that names the argument, what is accepted and what was given. Bools are refused where a
number is asked for (``True`` is an ``int`` to Python, never a count or a strength here).
The facade calls these on its single-setting path, so the common case is tested first.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

SEED_LIMIT = 2**32  # seeds become a uint32 (jax.random.key, the kernels' packed arguments)
# the most the command line and the web API scale gains by (the library's strength has no cap)
MAX_STRENGTH = 4.0


def count(value, name: str, minimum: int) -> int:
    """An integer ``>= minimum`` (Python or NumPy integer, not a bool) → ``int``."""
    if type(value) is int and value >= minimum:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def seed(value) -> int:
    """A PRNG seed: an integer in ``[0, 2**32)`` (not a bool) → ``int``."""
    if type(value) is int and 0 <= value < SEED_LIMIT:
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or not (0 <= value < SEED_LIMIT)
    ):
        raise ValueError(f"seed must be an integer in [0, 2**32), got {value!r}")
    return int(value)


def real(value, name: str, *, minimum: float | None = None) -> float:
    """A finite real scalar (Python, NumPy or a 0-d array; not a bool), optionally
    ``>= minimum`` → ``float``."""
    numeric = isinstance(value, numbers.Real) or (
        np.ndim(value) == 0 and getattr(value, "dtype", np.dtype(object)).kind in "fiu"
    )
    if isinstance(value, (bool, np.bool_)) or not numeric or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite real number; got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}; got {value!r}")
    return float(value)


def strength(value) -> float:
    """How far gains are scaled from flat: a finite real number ``>= 0`` (0 flat, 1 as
    generated, above 1 exaggerated) → ``float``."""
    if type(value) is float and 0.0 <= value < math.inf:
        return value
    try:
        return real(value, "strength", minimum=0.0)
    except ValueError:
        raise ValueError(
            f"strength must be a finite number >= 0 (0 flat, 1 as generated, > 1 "
            f"exaggerates), got {value!r}"
        ) from None


def on_malformed(value: str) -> str:
    """What a reader does with malformed entries: ``"raise"`` or ``"skip"``."""
    if value not in ("raise", "skip"):
        raise ValueError(f"on_malformed must be 'raise' or 'skip', got {value!r}")
    return value


def problem_list(problems, label: str, limit: int = 10) -> str:
    """``[(where, why)]`` as ``"entry 3: why; entry 9: why (and 4 more)"``, the first
    ``limit`` shown; ``label`` names what ``where`` counts (entry, line)."""
    shown = "; ".join(f"{label} {where}: {why}" for where, why in problems[:limit])
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return shown + more


def check_entries(source: str, parsed, skipped, on_malformed: str, hint: str = "") -> None:
    """Refuse a document's malformed entries ``[(index, why)]`` where ``on_malformed`` is
    ``"raise"``, and a document none of whose entries is well formed."""
    if skipped and on_malformed == "raise":
        noun = "entry" if len(skipped) == 1 else "entries"
        raise ValueError(
            f"{source}: {len(skipped)} malformed {noun} (0-based): "
            f"{problem_list(skipped, 'entry')}{hint}"
        )
    if not parsed:
        raise ValueError(
            f"{source}: every entry is malformed; first: entry {skipped[0][0]}: {skipped[0][1]}"
        )
