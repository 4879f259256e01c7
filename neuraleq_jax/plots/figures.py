"""What every plot shares: matplotlib imported on demand, a figure on its own Agg canvas
(never through ``pyplot``, so no global backend or figure state is touched), checked inputs
and output paths, and the atomic PNG write."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuraleq_jax.fileio import atomic_path
from neuraleq_jax.model import paramspace
from neuraleq_jax.model.paramspace import EQLayout


def require_matplotlib():
    """Import the pieces of matplotlib we use, or raise ImportError saying how to install it.
    Callers that create folders for plots call this first, so a broken install leaves none."""
    try:
        import matplotlib
        import matplotlib.cm
        import matplotlib.colors
        import matplotlib.lines
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            f"plotting needs matplotlib, which is missing or broken in this "
            f"environment ({error}); install it with: pip install matplotlib"
        ) from error
    return matplotlib, Figure, FigureCanvasAgg


def check_out_path(out_path) -> Path:
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".png":
        raise ValueError(f"plots are written as PNG; out_path must end in .png, got {out_path}")
    if not out_path.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {out_path.parent}")
    return out_path


def save(figure, out_path: Path) -> Path:
    """Render ``figure`` to a temporary PNG beside ``out_path``, then rename it into place."""
    with atomic_path(out_path) as temporary:
        figure.savefig(temporary, format="png", dpi=120)
    return out_path


def check_settings(settings, layout: EQLayout, name: str, min_rows: int = 1) -> np.ndarray:
    """Settings ``[P]`` or ``[N, P]`` → validated float64 ``[N, P]``."""
    array = np.asarray(settings, dtype=np.float64)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != layout.n_params:
        raise ValueError(
            f"{name} must be [N, {layout.n_params}] settings; got shape {np.shape(settings)}"
        )
    if len(array) < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} settings; got {len(array)}")
    paramspace.validate(array, layout, name=name)
    return np.clip(array, layout.lower, layout.upper)


def check_labels(labels, n: int, what: str) -> list[str]:
    if isinstance(labels, str) or len(labels) != n:
        count = "a single string" if isinstance(labels, str) else f"{len(labels)} entries"
        raise ValueError(f"labels must be a sequence of {n} strings, one per {what}; got {count}")
    return [str(label) for label in labels]


def new_figure(figsize: tuple[float, float]):
    """An empty figure of ``figsize`` inches on its own Agg canvas."""
    _, Figure, FigureCanvasAgg = require_matplotlib()
    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure


def check_points(points_Nx2, n: int | None = None) -> np.ndarray:
    """Finite 2-D points ``[N, 2]`` (N ≥ 1; N == ``n`` where given) → float64."""
    points = np.asarray(points_Nx2, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or not len(points) or n not in (None, len(points)):
        rows = "N >= 1" if n is None else f"one row per word ({n})"
        raise ValueError(f"points must be [N, 2] with {rows}; got shape {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("points contain NaN or infinite values")
    return points
