"""The EQ parameter space: the single source of truth for band layout, ranges and normalisation.

A setting is a vector of 15 physical values, five bands of ``[gain_dB, freq_Hz, q]``.
The unit space maps every parameter linearly onto ``[-1, 1]``: gain linearly, frequency and
Q in log space. Every other module calls this one; none hard-codes a range.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

import jax.numpy as jnp
import numpy as np

PARAMS_PER_BAND = 3
FIELDS = ("gain", "freq", "q")
BAND_KINDS = ("low_shelf", "peaking", "high_shelf")


@dataclasses.dataclass(frozen=True)
class Band:
    """One EQ band: its filter kind and its physical ranges (inclusive)."""

    kind: str
    freq_range: tuple[float, float]
    q_range: tuple[float, float]
    gain_range: tuple[float, float] = (-12.0, 12.0)

    def __post_init__(self):
        if self.kind not in BAND_KINDS:
            raise ValueError(f"band kind {self.kind!r} is not one of {BAND_KINDS}")
        for name, (low, high) in (
            ("gain", self.gain_range),
            ("freq", self.freq_range),
            ("q", self.q_range),
        ):
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"{name} range {(low, high)} must be finite with low < high")
        if self.freq_range[0] <= 0 or self.q_range[0] <= 0:
            raise ValueError("frequency and Q ranges must be positive (they are log-scaled)")


@dataclasses.dataclass(frozen=True)
class EQLayout:
    """An immutable band layout; hashable, so it can be a static argument of ``jax.jit``."""

    bands: tuple[Band, ...]

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    @property
    def n_params(self) -> int:
        return PARAMS_PER_BAND * len(self.bands)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(f"band{i + 1}_{field}" for i in range(self.n_bands) for field in FIELDS)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(band.kind for band in self.bands)

    @property
    def lower(self) -> np.ndarray:
        """Physical lower bounds, shape ``[n_params]``."""
        return np.array([r[0] for b in self.bands for r in (b.gain_range, b.freq_range, b.q_range)])

    @property
    def upper(self) -> np.ndarray:
        """Physical upper bounds, shape ``[n_params]``."""
        return np.array([r[1] for b in self.bands for r in (b.gain_range, b.freq_range, b.q_range)])

    @property
    def log_scaled(self) -> np.ndarray:
        """Boolean mask, shape ``[n_params]``: True for frequency and Q."""
        return np.array([field != "gain" for _ in self.bands for field in FIELDS])

    @property
    def gain_indices(self) -> np.ndarray:
        return np.arange(0, self.n_params, PARAMS_PER_BAND)

    @property
    def freq_indices(self) -> np.ndarray:
        return np.arange(1, self.n_params, PARAMS_PER_BAND)

    @property
    def q_indices(self) -> np.ndarray:
        return np.arange(2, self.n_params, PARAMS_PER_BAND)


DEFAULT_LAYOUT = EQLayout(
    bands=(
        Band("low_shelf", (20.0, 200.0), (0.1, 2.0)),
        Band("peaking", (200.0, 800.0), (0.1, 10.0)),
        Band("peaking", (800.0, 3200.0), (0.1, 10.0)),
        Band("peaking", (3200.0, 12800.0), (0.1, 10.0)),
        Band("high_shelf", (8000.0, 20000.0), (0.1, 2.0)),
    )
)


def _bounds_in_working_space(layout: EQLayout) -> tuple[np.ndarray, np.ndarray]:
    """Bounds after the log transform of frequency and Q, float32 like the arrays they meet."""
    log = layout.log_scaled
    lower = np.where(log, np.log(np.where(log, layout.lower, 1.0)), layout.lower)
    upper = np.where(log, np.log(np.where(log, layout.upper, 1.0)), layout.upper)
    return lower.astype(np.float32), upper.astype(np.float32)


def normalize(params: jnp.ndarray, layout: EQLayout = DEFAULT_LAYOUT) -> jnp.ndarray:
    """Physical parameters ``[..., n_params]`` → unit space ``[..., n_params]`` in ``[-1, 1]``."""
    lower, upper = _bounds_in_working_space(layout)
    params = jnp.asarray(params)
    working = jnp.where(
        layout.log_scaled, jnp.log(jnp.where(layout.log_scaled, params, 1.0)), params
    )
    return 2.0 * (working - lower) / (upper - lower) - 1.0


def denormalize(unit: jnp.ndarray, layout: EQLayout = DEFAULT_LAYOUT) -> jnp.ndarray:
    """Unit space ``[..., n_params]`` → physical parameters ``[..., n_params]``."""
    lower, upper = _bounds_in_working_space(layout)
    working = lower + (jnp.asarray(unit) + 1.0) * 0.5 * (upper - lower)
    return jnp.where(layout.log_scaled, jnp.exp(working), working)


def clip(params: jnp.ndarray, layout: EQLayout = DEFAULT_LAYOUT) -> jnp.ndarray:
    """Clip physical parameters ``[..., n_params]`` into the layout's ranges."""
    return jnp.clip(params, layout.lower.astype(np.float32), layout.upper.astype(np.float32))


def scale_gains(settings, strength, layout: EQLayout = DEFAULT_LAYOUT, xp=jnp):
    """Physical settings ``[..., n_params]`` with their gains scaled toward flat by ``strength``
    (broadcast to the leading dims ``[...]``) and clipped into the gain range: 0 gives 0 dB
    gains, 1 leaves them, > 1 exaggerates. Frequencies and Q are unchanged. ``xp=np`` computes
    in NumPy at the settings' precision; ``jnp`` is traceable."""
    strength = xp.asarray(strength, settings.dtype)[..., None]
    gain_mask = np.zeros(layout.n_params, bool)
    gain_mask[layout.gain_indices] = True
    lower, upper = layout.lower.astype(settings.dtype), layout.upper.astype(settings.dtype)
    return xp.where(gain_mask, xp.clip(settings * strength, lower, upper), settings)


def strength_clipped_bands(
    scaled_settings, strength: float, layout: EQLayout = DEFAULT_LAYOUT
) -> tuple[int, ...]:
    """The bands (numbered from 1) whose gain ``strength`` took to the edge of the gain range
    in any of the settings ``[..., n_params]``, given after :func:`scale_gains` (as generation
    and ``audio.filtering.scale_strength`` scale them). Only a strength above 1 can: that gain
    is held at the edge while the others keep scaling, so the setting's shape changes."""
    if not float(strength) > 1.0:
        return ()
    settings = np.asarray(scaled_settings)
    gains = settings[..., list(layout.gain_indices)].reshape(-1, layout.n_bands)
    lower = layout.lower[list(layout.gain_indices)].astype(gains.dtype)
    upper = layout.upper[list(layout.gain_indices)].astype(gains.dtype)
    at_edge_B = np.any((gains <= lower) | (gains >= upper), axis=0)
    return tuple(int(band) + 1 for band in np.flatnonzero(at_edge_B))


def strength_clipping_note(
    bands: tuple[int, ...], strength: float, layout: EQLayout = DEFAULT_LAYOUT
) -> str | None:
    """The one-line note for :func:`strength_clipped_bands`' ``bands`` (None when empty): which
    gains ``strength`` clipped, and to what range."""
    if not bands:
        return None
    edges = {
        (
            float(layout.lower[layout.gain_indices[b - 1]]),
            float(layout.upper[layout.gain_indices[b - 1]]),
        )
        for b in bands
    }
    (low, high), *others = edges
    limit = "their range" if others else f"{low:g} to {high:g} dB"
    limit = f"±{high:g} dB" if not others and low == -high else limit
    numbers = ", ".join(map(str, bands))
    which = f"gains of bands {numbers}" if len(bands) > 1 else f"gain of band {numbers}"
    return (
        f"strength {float(strength):g} pushed the {which} past {limit}; clipped there while the "
        f"other gains kept scaling"
    )


def flat_setting(layout: EQLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """A 0 dB setting with every frequency and Q at its log-centre, shape ``[n_params]``."""
    centre = np.array(denormalize(jnp.zeros(layout.n_params), layout))
    centre[layout.gain_indices] = 0.0
    return centre


def check_shape(shape: tuple[int, ...], layout: EQLayout = DEFAULT_LAYOUT, name="params") -> None:
    """ValueError unless ``shape`` is ``[..., n_params]``, naming the layout's parameters."""
    if len(shape) == 0 or shape[-1] != layout.n_params:
        raise ValueError(
            f"{name} must have shape [..., {layout.n_params}] "
            f"({', '.join(layout.param_names[:3])}, ... per band); got {tuple(shape)}"
        )


def validate(
    params, layout: EQLayout = DEFAULT_LAYOUT, *, name: str = "params", tolerance: float = 1e-4
) -> np.ndarray:
    """Check physical parameters on the host; return them as float32 ``[..., n_params]``.

    Raises ValueError naming the offending parameter, its value and its allowed range for
    wrong shapes, non-finite values and out-of-range values. ``tolerance`` is relative to the
    range width and absorbs float32 round-off at the edges.
    """
    array = np.asarray(params, dtype=np.float64)
    check_shape(array.shape, layout, name)
    flat = array.reshape(-1, layout.n_params)
    names = layout.param_names
    bad = ~np.isfinite(flat)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"{name}: {names[col]} is {flat[row, col]} (row {row}); values must be finite"
        )
    slack = tolerance * (layout.upper - layout.lower)
    outside = (flat < layout.lower - slack) | (flat > layout.upper + slack)
    if outside.any():
        row, col = np.argwhere(outside)[0]
        raise ValueError(
            f"{name}: {names[col]} = {flat[row, col]:g} (row {row}) is outside its "
            f"allowed range [{layout.lower[col]:g}, {layout.upper[col]:g}]; "
            f"{int(outside.sum())} value(s) out of range in all"
        )
    return np.clip(array, layout.lower, layout.upper).astype(np.float32)


def to_dicts(params, layout: EQLayout = DEFAULT_LAYOUT) -> list[dict[str, float]]:
    """Settings ``[n_params]`` or ``[N, n_params]`` → list of ``{"band1_gain": ..., ...}`` dicts."""
    array = np.asarray(params, dtype=np.float64).reshape(-1, layout.n_params)
    names = layout.param_names
    return [{name: float(value) for name, value in zip(names, row)} for row in array]


def from_dicts(
    rows: Iterable[Mapping[str, float]], layout: EQLayout = DEFAULT_LAYOUT
) -> np.ndarray:
    """List of named dicts → validated float32 array ``[N, n_params]``.

    Extra keys (such as a word label) are ignored; a missing parameter raises ValueError.
    """
    names = layout.param_names
    table = []
    for index, row in enumerate(rows):
        missing = [n for n in names if n not in row]
        if missing:
            raise ValueError(f"setting {index} lacks {missing}; each setting needs all of {names}")
        try:
            table.append([float(row[n]) for n in names])
        except (TypeError, ValueError) as error:
            raise ValueError(f"setting {index} has a non-numeric parameter: {error}") from None
    if not table:
        raise ValueError("no settings given; expected a non-empty list of dicts")
    return validate(np.array(table), layout, name="settings")


def layout_to_json(layout: EQLayout) -> list[dict]:
    """A JSON-ready description of a layout (stored beside checkpoints)."""
    return [dataclasses.asdict(band) for band in layout.bands]


def layout_from_json(bands: Sequence[Mapping]) -> EQLayout:
    """Inverse of :func:`layout_to_json`."""
    return EQLayout(
        bands=tuple(
            Band(
                kind=b["kind"],
                freq_range=tuple(b["freq_range"]),
                q_range=tuple(b["q_range"]),
                gain_range=tuple(b["gain_range"]),
            )
            for b in bands
        )
    )
