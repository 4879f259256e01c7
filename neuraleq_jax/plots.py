"""PNG plots of EQ settings: response curves, morphs, data envelopes and 2-D latent maps.

matplotlib is a dependency, imported only when a plot is drawn (so commands that never plot
start faster). Figures are drawn on the Agg canvas directly, never through ``pyplot``, so no
global backend or figure state is touched. Every function writes its PNG atomically (a
temporary file beside the target, then ``os.replace``) and returns the path written.

Responses are the RBJ magnitude responses of :mod:`neuraleq_jax.response` at ``sample_rate``,
drawn from 20 Hz to 20 kHz (or to just below Nyquist for lower rates, where band frequencies
above 0.45·fs are lowered exactly as :func:`neuraleq_jax.audio.apply_eq` lowers them).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from neuraleq_jax import paramspace
from neuraleq_jax.audio import clamp_band_frequencies
from neuraleq_jax.fileio import atomic_path
from neuraleq_jax.paramspace import DEFAULT_LAYOUT, EQLayout
from neuraleq_jax.response import DEFAULT_SAMPLE_RATE, magnitude_response_db

PLOT_RANGE_HZ = (20.0, 20_000.0)
PLOT_POINTS = 512
_TICKS_HZ = (20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000)
_MARKERS = {"low_shelf": "s", "high_shelf": "s", "peaking": "o"}


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


def _check_out_path(out_path) -> Path:
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".png":
        raise ValueError(f"plots are written as PNG; out_path must end in .png, got {out_path}")
    if not out_path.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {out_path.parent}")
    return out_path


def _save(figure, out_path: Path) -> Path:
    """Render ``figure`` to a temporary PNG beside ``out_path``, then rename it into place."""
    with atomic_path(out_path) as temporary:
        figure.savefig(temporary, format="png", dpi=120)
    return out_path


def _check_settings(settings, layout: EQLayout, name: str, min_rows: int = 1) -> np.ndarray:
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


def _check_labels(labels, n: int, what: str) -> list[str]:
    if isinstance(labels, str) or len(labels) != n:
        count = "a single string" if isinstance(labels, str) else f"{len(labels)} entries"
        raise ValueError(f"labels must be a sequence of {n} strings, one per {what}; got {count}")
    return [str(label) for label in labels]


def _frequency_grid(sample_rate: float) -> np.ndarray:
    high = min(PLOT_RANGE_HZ[1], 0.499 * sample_rate)
    return np.geomspace(PLOT_RANGE_HZ[0], high, PLOT_POINTS)


@functools.partial(jax.jit, static_argnames=("sample_rate", "layout"))
def _responses_db(used_NxP, freqs_F, sample_rate, layout):
    # one compiled call: eager jnp would compile every primitive anew (seconds per plot)
    at_bands_NxB = jax.vmap(
        lambda row: magnitude_response_db(row, row[layout.freq_indices], sample_rate, layout)
    )(used_NxP)
    return magnitude_response_db(used_NxP, freqs_F, sample_rate, layout), at_bands_NxB


def _curves(settings_NxP, freqs_F, sample_rate, layout):
    """Responses ``[N, F]`` dB, and per band its frequency and level on the curve ``[N, B]``."""
    used_NxP = np.stack(
        [clamp_band_frequencies(row, sample_rate, layout)[0] for row in settings_NxP]
    ).astype(np.float32)
    curves_NxF, band_db_NxB = _responses_db(
        used_NxP, freqs_F.astype(np.float32), float(sample_rate), layout
    )
    return np.asarray(curves_NxF), used_NxP[:, layout.freq_indices], np.asarray(band_db_NxB)


def _axes(figure, title: str | None, sample_rate: float):
    axes = figure.add_subplot()
    axes.set_xscale("log")
    axes.set_xlim(PLOT_RANGE_HZ[0], min(PLOT_RANGE_HZ[1], 0.499 * sample_rate))
    ticks = [t for t in _TICKS_HZ if t <= 0.499 * sample_rate]
    axes.set_xticks(ticks, [f"{t // 1000}k" if t >= 1000 else str(t) for t in ticks])
    axes.minorticks_off()
    axes.axhline(0.0, color="0.6", linewidth=0.8)
    axes.grid(True, which="major", alpha=0.3)
    axes.set_xlabel("frequency (Hz)")
    axes.set_ylabel("gain (dB)")
    if title:
        axes.set_title(title)
    return axes


def _band_markers(axes, band_hz_NxB, band_db_NxB, colours, layout, size=6.0):
    for hz_B, db_B, colour in zip(band_hz_NxB, band_db_NxB, colours):
        for hz, db, kind in zip(hz_B, db_B, layout.kinds):
            axes.plot(
                hz,
                db,
                _MARKERS[kind],
                color=colour,
                markersize=size,
                markeredgecolor="black",
                markeredgewidth=0.5,
            )


def _marker_legend_handles(matplotlib):
    line = matplotlib.lines.Line2D
    return [
        line(
            [],
            [],
            marker="o",
            linestyle="",
            color="0.7",
            markeredgecolor="black",
            label="bell centre",
        ),
        line(
            [],
            [],
            marker="s",
            linestyle="",
            color="0.7",
            markeredgecolor="black",
            label="shelf corner",
        ),
    ]


def plot_responses(
    settings_NxP,
    labels: Sequence[str],
    out_path,
    title: str | None = None,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = DEFAULT_SAMPLE_RATE,
) -> Path:
    """Response curves (dB over log frequency) of settings, with band markers and a legend.

    Args:
      settings_NxP: physical settings ``[N, n_params]`` (or one ``[n_params]``).
      labels: ``N`` legend labels.
      out_path: the PNG to write.
    Returns:
      ``out_path`` as a Path.
    """
    matplotlib, Figure, FigureCanvasAgg = require_matplotlib()
    settings_NxP = _check_settings(settings_NxP, layout, "settings")
    labels = _check_labels(labels, len(settings_NxP), "setting")
    out_path = _check_out_path(out_path)
    freqs_F = _frequency_grid(sample_rate)
    curves_NxF, band_hz, band_db = _curves(settings_NxP, freqs_F, sample_rate, layout)
    figure = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(figure)
    axes = _axes(figure, title, sample_rate)
    palette = matplotlib.colormaps["tab10" if len(curves_NxF) <= 10 else "turbo"]
    colours = [
        palette(i if len(curves_NxF) <= 10 else i / max(len(curves_NxF) - 1, 1))
        for i in range(len(curves_NxF))
    ]
    for curve, label, colour in zip(curves_NxF, labels, colours):
        axes.plot(freqs_F, curve, color=colour, linewidth=1.6, label=label)
    _band_markers(axes, band_hz, band_db, colours, layout)
    handles, _ = axes.get_legend_handles_labels()
    axes.legend(handles=handles + _marker_legend_handles(matplotlib), fontsize="small", loc="best")
    return _save(figure, out_path)


def plot_morph(
    settings_SxP,
    out_path,
    *,
    start_label: str | None = None,
    end_label: str | None = None,
    title: str | None = None,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = DEFAULT_SAMPLE_RATE,
    colormap: str = "viridis",
) -> Path:
    """The steps of a morph as response curves coloured along a ramp (first → last step).

    Args:
      settings_SxP: physical settings ``[S, n_params]``, S ≥ 2, in step order.
      start_label, end_label: legend names of the first and last step (e.g. the two words).
      colormap: a matplotlib colormap name for the step ramp.
    Returns:
      ``out_path`` as a Path.
    """
    matplotlib, Figure, FigureCanvasAgg = require_matplotlib()
    settings_SxP = _check_settings(settings_SxP, layout, "morph steps", min_rows=2)
    out_path = _check_out_path(out_path)
    if colormap not in matplotlib.colormaps:
        raise ValueError(f"unknown colormap {colormap!r}; e.g. viridis, plasma, coolwarm")
    freqs_F = _frequency_grid(sample_rate)
    curves_SxF, band_hz, band_db = _curves(settings_SxP, freqs_F, sample_rate, layout)
    steps = len(curves_SxF)
    ramp = matplotlib.colormaps[colormap]
    colours = [ramp(i / (steps - 1)) for i in range(steps)]
    figure = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(figure)
    axes = _axes(figure, title, sample_rate)
    for step, (curve, colour) in enumerate(zip(curves_SxF, colours)):
        label = {0: start_label, steps - 1: end_label}.get(step)
        axes.plot(freqs_F, curve, color=colour, linewidth=2.2 if label else 1.0, label=label)
    _band_markers(axes, band_hz, band_db, colours, layout, size=3.5)
    mappable = matplotlib.cm.ScalarMappable(
        norm=matplotlib.colors.Normalize(0, steps - 1), cmap=ramp
    )
    figure.colorbar(mappable, ax=axes, label="step")
    if start_label or end_label:
        axes.legend(fontsize="small", loc="best")
    return _save(figure, out_path)


def _envelope_inputs(
    generated_NxP, data_NxP, out_path, percentiles, layout, sample_rate, generated_min_rows: int
):
    """Checked settings, percentiles, output path and frequency grid of an envelope plot."""
    generated_NxP = _check_settings(generated_NxP, layout, "generated", min_rows=generated_min_rows)
    data_NxP = _check_settings(data_NxP, layout, "data", min_rows=2)
    low, high = percentiles
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100; got {percentiles}")
    return (
        generated_NxP,
        data_NxP,
        low,
        high,
        _check_out_path(out_path),
        _frequency_grid(sample_rate),
    )


def plot_envelope(
    generated_NxP,
    data_NxP,
    out_path,
    label: str,
    *,
    title: str | None = None,
    percentiles: tuple[float, float] = (10.0, 90.0),
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = DEFAULT_SAMPLE_RATE,
) -> Path:
    """Generated response curves over the data's percentile envelope (default 10–90 %).

    The title line also states the share of generated curve points inside the envelope.

    Args:
      generated_NxP: generated physical settings ``[N, n_params]``.
      data_NxP: the data's settings for the same word ``[M, n_params]``, M ≥ 2.
      label: what the curves are (e.g. the word), used in the legend and default title.
    Returns:
      ``out_path`` as a Path.
    """
    matplotlib, Figure, FigureCanvasAgg = require_matplotlib()
    generated_NxP, data_NxP, low, high, out_path, freqs_F = _envelope_inputs(
        generated_NxP, data_NxP, out_path, percentiles, layout, sample_rate, 1
    )
    generated_NxF, _, _ = _curves(generated_NxP, freqs_F, sample_rate, layout)
    data_MxF, _, _ = _curves(data_NxP, freqs_F, sample_rate, layout)
    low_F, median_F, high_F = np.percentile(data_MxF, [low, 50.0, high], axis=0)
    inside = np.mean((generated_NxF >= low_F) & (generated_NxF <= high_F))
    figure = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(figure)
    heading = title or f"{label}: generated vs data"
    axes = _axes(
        figure,
        f"{heading}\n{inside:.0%} of generated points inside the {low:g}–{high:g} % envelope",
        sample_rate,
    )
    axes.fill_between(
        freqs_F,
        low_F,
        high_F,
        color="tab:blue",
        alpha=0.25,
        label=f"data {low:g}–{high:g} % ({len(data_MxF)} settings)",
    )
    axes.plot(
        freqs_F, median_F, color="tab:blue", linestyle="--", linewidth=1.4, label="data median"
    )
    for index, curve in enumerate(generated_NxF):
        axes.plot(
            freqs_F,
            curve,
            color="tab:red",
            linewidth=0.9,
            alpha=0.8,
            label=f"generated {label} ({len(generated_NxF)})" if index == 0 else None,
        )
    axes.legend(fontsize="small", loc="best")
    return _save(figure, out_path)


def plot_envelope_comparison(
    generated_NxP,
    data_NxP,
    out_path,
    label: str,
    *,
    title: str | None = None,
    note: str | None = None,
    percentiles: tuple[float, float] = (10.0, 90.0),
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = DEFAULT_SAMPLE_RATE,
) -> Path:
    """Generated vs data response envelopes of one word on a log-frequency axis: each set's
    percentile band (default 10–90 %) and median line; they should overlap.

    Args:
      generated_NxP: generated physical settings ``[N, n_params]``, N ≥ 2.
      data_NxP: the data's (held-out) settings for the same word ``[M, n_params]``, M ≥ 2.
      label: the word, for the legend and default title.
      note: an extra title line (e.g. the word's distribution match).
    Returns:
      ``out_path`` as a Path.
    """
    matplotlib, Figure, FigureCanvasAgg = require_matplotlib()
    generated_NxP, data_NxP, low, high, out_path, freqs_F = _envelope_inputs(
        generated_NxP, data_NxP, out_path, percentiles, layout, sample_rate, 2
    )
    figure = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(figure)
    heading = title or f"{label}: generated vs held-out data"
    axes = _axes(figure, heading + (f"\n{note}" if note else ""), sample_rate)
    for settings, colour, name in (
        (data_NxP, "tab:blue", "held-out data"),
        (generated_NxP, "tab:red", "generated"),
    ):
        curves_NxF, _, _ = _curves(settings, freqs_F, sample_rate, layout)
        low_F, median_F, high_F = np.percentile(curves_NxF, [low, 50.0, high], axis=0)
        axes.fill_between(
            freqs_F,
            low_F,
            high_F,
            color=colour,
            alpha=0.2,
            label=f"{name} {low:g}–{high:g} % ({len(curves_NxF)} settings)",
        )
        axes.plot(freqs_F, median_F, color=colour, linewidth=1.6, label=f"{name} median")
    axes.legend(fontsize="small", loc="best")
    return _save(figure, out_path)


def plot_latent_2d(
    points_Nx2, labels, vocabulary: Sequence[str], out_path, *, title: str | None = None
) -> Path:
    """A 2-D map of latent points (e.g. a PCA projection), coloured by word.

    Args:
      points_Nx2: float ``[N, 2]``.
      labels: ``[N]`` word ids (indices into ``vocabulary``) or words.
      vocabulary: the words, in their fixed order (sets the colours and legend order).
    Returns:
      ``out_path`` as a Path.
    """
    matplotlib, Figure, FigureCanvasAgg = require_matplotlib()
    points_Nx2 = np.asarray(points_Nx2, dtype=np.float64)
    if points_Nx2.ndim != 2 or points_Nx2.shape[1] != 2 or len(points_Nx2) == 0:
        raise ValueError(f"points must be [N, 2] with N >= 1; got shape {points_Nx2.shape}")
    if not np.isfinite(points_Nx2).all():
        raise ValueError("points contain NaN or infinite values")
    vocabulary = tuple(vocabulary)
    if not vocabulary or len(set(vocabulary)) != len(vocabulary):
        raise ValueError(f"vocabulary must be non-empty with unique words; got {vocabulary}")
    ids_N = _word_ids(labels, vocabulary, len(points_Nx2))
    out_path = _check_out_path(out_path)
    palette = matplotlib.colormaps["tab10" if len(vocabulary) <= 10 else "tab20"]
    figure = Figure(figsize=(6.5, 5.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for word_id, word in enumerate(vocabulary):
        mine = points_Nx2[ids_N == word_id]
        if not len(mine):
            continue
        colour = palette(word_id % palette.N)
        axes.scatter(mine[:, 0], mine[:, 1], s=14, color=colour, alpha=0.75, label=word)
        centre = mine.mean(axis=0)
        axes.annotate(
            word,
            centre,
            ha="center",
            va="center",
            fontsize="small",
            fontweight="bold",
            bbox={"boxstyle": "round", "fc": "white", "ec": colour, "alpha": 0.8},
        )
    axes.set_xlabel("latent dimension 1")
    axes.set_ylabel("latent dimension 2")
    axes.grid(True, alpha=0.3)
    if title:
        axes.set_title(title)
    axes.legend(fontsize="small", loc="best", markerscale=1.5)
    return _save(figure, out_path)


def _word_ids(labels, vocabulary: tuple[str, ...], n: int) -> np.ndarray:
    """Word ids or words ``[N]`` → int ids ``[N]`` into ``vocabulary``, with clear errors."""
    labels = list(labels) if not isinstance(labels, np.ndarray) else labels.tolist()
    if len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries but points has {n} rows")
    if all(isinstance(label, str) for label in labels):
        unknown = sorted({label for label in labels if label not in vocabulary})
        if unknown:
            raise ValueError(f"unknown words {unknown}; the vocabulary is {list(vocabulary)}")
        return np.array([vocabulary.index(label) for label in labels], dtype=np.int64)
    ids = np.asarray(labels)
    if not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= len(vocabulary):
        raise ValueError(
            f"labels must be words or integer ids in [0, {len(vocabulary)}); "
            f"got values from {ids.min()!r} to {ids.max()!r}"
        )
    return ids.astype(np.int64)


def _map_sizes(confidence, n: int) -> np.ndarray:
    """Marker areas (pt²) from confidences in [0, 1] (None → the smallest size)."""
    if confidence is None:
        return np.full(n, 40.0)
    values = np.array([np.nan if c is None else float(c) for c in confidence], np.float64)
    if len(values) != n:
        raise ValueError(f"confidence has {len(values)} entries for {n} words")
    return 15.0 + 160.0 * np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)


def _uncluttered(points_Wx2, order, cells=(36, 70)) -> list[int]:
    """Words to label, in ``order`` (most important first), at most one per cell of a
    ``cells`` (columns, rows) grid over the points' range, so that labels do not overprint."""
    low, high = points_Wx2.min(0), points_Wx2.max(0)
    size = np.maximum(high - low, 1e-9) / np.array(cells)
    taken, chosen = set(), []
    for index in order:
        cell = tuple(((points_Wx2[index] - low) // size).astype(int))
        if cell not in taken:
            taken.add(cell)
            chosen.append(int(index))
    return chosen


def plot_word_map(
    points_Wx2,
    words: Sequence[str],
    out_path,
    *,
    confidence=None,
    title: str | None = None,
    max_labels: int = 400,
) -> Path:
    """The vocabulary's 2-D word map: one marker per word, sized by its confidence (0–1, or
    None), labelled in small type with a white halo so that crowded labels stay readable.

    Args:
      points_Wx2: float ``[W, 2]`` (e.g. ``system.word_map()``).
      words: ``W`` words in the same order.
      confidence: ``W`` values in [0, 1] or None (e.g. ``system.word_info(w)["confidence"]``).
      max_labels: label at most this many words, the most confident first, and at most one
        per small cell of the map (the others are markers only).
    Returns:
      ``out_path`` as a Path.
    """
    matplotlib, Figure, FigureCanvasAgg = require_matplotlib()
    import matplotlib.patheffects as effects

    points = np.asarray(points_Wx2, dtype=np.float64)
    words = [str(w) for w in words]
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(words) or not len(words):
        raise ValueError(
            f"points must be [W, 2] with one row per word ({len(words)}); got shape {points.shape}"
        )
    if not np.isfinite(points).all():
        raise ValueError("points contain NaN or infinite values")
    out_path = _check_out_path(out_path)
    sizes = _map_sizes(confidence, len(words))
    side = float(np.clip(4.0 + 0.35 * np.sqrt(len(words)), 6.0, 16.0))
    figure = Figure(figsize=(side * 1.15, side))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.scatter(
        points[:, 0], points[:, 1], s=sizes, c=sizes, cmap="viridis", alpha=0.6, edgecolors="none"
    )
    halo = [effects.withStroke(linewidth=2.0, foreground="white")]
    for index in _uncluttered(points, np.argsort(-sizes, kind="stable"))[:max_labels]:
        axes.annotate(
            words[index],
            points[index],
            fontsize=6 if len(words) > 60 else 9,
            ha="center",
            va="bottom",
            xytext=(0, 2),
            textcoords="offset points",
            path_effects=halo,
        )
    axes.set_xlabel("map axis 1 (≈ RMS dB)")
    axes.set_ylabel("map axis 2 (≈ RMS dB)")
    axes.grid(True, alpha=0.3)
    axes.set_title(title or f"word map: {len(words)} words (marker size: confidence)")
    return _save(figure, out_path)
