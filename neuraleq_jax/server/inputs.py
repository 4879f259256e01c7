"""Reading the JSON API's request bodies: each reader takes a field of the body, checks it
and returns it, or raises :class:`ApiError` with what was wrong and what is accepted."""

from __future__ import annotations

import math

import numpy as np

from neuraleq_jax.checks import MAX_STRENGTH
from neuraleq_jax.model import paramspace

LIMITS = {
    "body_bytes": 1 << 20,
    "variations": 256,
    "steps": 129,
    "explore": 64,
    "settings": 256,
    "points": 2048,
    "k": 20,
    "term_chars": 200,
    "strength": MAX_STRENGTH,  # the command line's limit too
}
SAMPLE_RATE_RANGE = (8_000.0, 192_000.0)
INCLUDES = ("response", "coefficients")


class ApiError(Exception):
    """Bad input: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def check_keys(body: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, f"unknown field(s) {unknown}; accepted: {list(allowed)}")


def integer(body: dict, name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def number(body: dict, name: str, default: float, low: float, high: float) -> float:
    value = body.get(name, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and low <= value <= high)
    ):
        raise ApiError(400, f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def strength(body: dict) -> float:
    """``strength``, 0 to ``MAX_STRENGTH`` (default 1): how far gains are scaled from flat."""
    return number(body, "strength", 1.0, 0.0, MAX_STRENGTH)


def word_choice(body: dict) -> tuple[int, bool]:
    """``(variations, centre)``: the word's centre (``centre: true``, one setting) or
    ``variations`` drawn from ``seed`` on, as the command line chooses (``--centre``/``-n``)."""
    variations = integer(body, "variations", 1, 1, LIMITS["variations"])
    centre = boolean(body, "centre", False)
    if centre and variations != 1:
        raise ApiError(
            400,
            f"centre gives a word's one centre setting, so variations must be 1 with it "
            f"(got {variations}); drop centre for variations drawn from seed",
        )
    return variations, centre


def boolean(body: dict, name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false, got {value!r}")
    return value


def term(body: dict, name: str):
    """A word, a compound string, or ``{word: weight}``."""
    value = body.get(name)
    if isinstance(value, str) and 0 < len(value) <= LIMITS["term_chars"]:
        return value
    if (
        isinstance(value, dict)
        and 0 < len(value) <= 64
        and all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            for k, v in value.items()
        )
    ):
        return value
    raise ApiError(
        400,
        f"{name} must be a word or description such as 'warm' or "
        f"'0.7 warm + 0.3 bright' (1-{LIMITS['term_chars']} characters), or "
        f"an object {{word: weight}}; got {str(value)[:80]!r}",
    )


def settings(body: dict, layout, *, single: bool = False) -> np.ndarray:
    """``setting`` ([15] or a named dict) or ``settings`` (a list of them) → ``[N, 15]``."""
    if ("setting" in body) == ("settings" in body):
        raise ApiError(
            400,
            "give exactly one of 'setting' (15 numbers or a dict band1_gain "
            "... band5_q) or 'settings' (a list of them)",
        )
    value = [body["setting"]] if "setting" in body else body["settings"]
    if not isinstance(value, list) or not value:
        raise ApiError(400, "settings must be a non-empty list")
    if len(value) > (1 if single else LIMITS["settings"]):
        raise ApiError(
            413 if not single else 400,
            f"at most {1 if single else LIMITS['settings']}"
            f" setting(s) per request, got {len(value)}",
        )
    try:
        if all(isinstance(row, dict) for row in value):
            return paramspace.from_dicts(value, layout)
        if not all(
            isinstance(row, list)
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in row)
            for row in value
        ):
            raise ValueError(
                f"each setting must be a list of {layout.n_params} numbers "
                f"({', '.join(layout.param_names[:3])}, ...) or a named dict"
            )
        return paramspace.validate(np.array(value, np.float64), layout, name="setting")
    except ValueError as error:
        raise ApiError(400, str(error)) from None


def include(body: dict) -> tuple[str, ...]:
    value = body.get("include", [])
    if not isinstance(value, list) or not set(value) <= set(INCLUDES):
        raise ApiError(400, f"include must be a list drawn from {list(INCLUDES)}, got {value!r}")
    return tuple(value)
