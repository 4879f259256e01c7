"""Response plots: curves of settings, the steps of a morph, and generated settings against
a data set's percentile envelope, in dB over log frequency."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from neuraleq_jax.audio.filtering import clamp_band_frequencies
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout
from neuraleq_jax.model.response import DEFAULT_SAMPLE_RATE, magnitude_response_db
from neuraleq_jax.plots.figures import (
    check_labels,
    check_out_path,
    check_settings,
    new_figure,
    require_matplotlib,
    save,
)

PLOT_RANGE_HZ = (20.0, 20_000.0)
PLOT_POINTS = 512
_TICKS_HZ = (20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000)
_MARKERS = {"low_shelf": "s", "high_shelf": "s", "peaking": "o"}


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
    return [
        matplotlib.lines.Line2D(
            [], [], marker=marker, linestyle="", color="0.7", markeredgecolor="black", label=label
        )
        for marker, label in (("o", "bell centre"), ("s", "shelf corner"))
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
    matplotlib, _, _ = require_matplotlib()
    settings_NxP = check_settings(settings_NxP, layout, "settings")
    labels = check_labels(labels, len(settings_NxP), "setting")
    out_path = check_out_path(out_path)
    freqs_F = _frequency_grid(sample_rate)
    curves_NxF, band_hz, band_db = _curves(settings_NxP, freqs_F, sample_rate, layout)
    figure = new_figure((8, 4.5))
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
    return save(figure, out_path)


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
    matplotlib, _, _ = require_matplotlib()
    settings_SxP = check_settings(settings_SxP, layout, "morph steps", min_rows=2)
    out_path = check_out_path(out_path)
    if colormap not in matplotlib.colormaps:
        raise ValueError(f"unknown colormap {colormap!r}; e.g. viridis, plasma, coolwarm")
    freqs_F = _frequency_grid(sample_rate)
    curves_SxF, band_hz, band_db = _curves(settings_SxP, freqs_F, sample_rate, layout)
    steps = len(curves_SxF)
    ramp = matplotlib.colormaps[colormap]
    colours = [ramp(i / (steps - 1)) for i in range(steps)]
    figure = new_figure((8, 4.5))
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
    return save(figure, out_path)


def _envelope_inputs(
    generated_NxP, data_NxP, out_path, percentiles, layout, sample_rate, generated_min_rows: int
):
    """Checked settings, percentiles, output path and frequency grid of an envelope plot."""
    generated_NxP = check_settings(generated_NxP, layout, "generated", min_rows=generated_min_rows)
    data_NxP = check_settings(data_NxP, layout, "data", min_rows=2)
    low, high = percentiles
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100; got {percentiles}")
    return (
        generated_NxP,
        data_NxP,
        low,
        high,
        check_out_path(out_path),
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
    require_matplotlib()
    generated_NxP, data_NxP, low, high, out_path, freqs_F = _envelope_inputs(
        generated_NxP, data_NxP, out_path, percentiles, layout, sample_rate, 1
    )
    generated_NxF, _, _ = _curves(generated_NxP, freqs_F, sample_rate, layout)
    data_MxF, _, _ = _curves(data_NxP, freqs_F, sample_rate, layout)
    low_F, median_F, high_F = np.percentile(data_MxF, [low, 50.0, high], axis=0)
    inside = np.mean((generated_NxF >= low_F) & (generated_NxF <= high_F))
    figure = new_figure((8, 4.5))
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
    return save(figure, out_path)


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
    require_matplotlib()
    generated_NxP, data_NxP, low, high, out_path, freqs_F = _envelope_inputs(
        generated_NxP, data_NxP, out_path, percentiles, layout, sample_rate, 2
    )
    figure = new_figure((8, 4.5))
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
    return save(figure, out_path)
