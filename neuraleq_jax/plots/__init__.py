"""PNG plots of EQ settings: response curves, morphs, data envelopes and 2-D latent maps.

matplotlib is a dependency, imported only when a plot is drawn (so commands that never plot
start faster). Figures are drawn on the Agg canvas directly, never through ``pyplot``, so no
global backend or figure state is touched. Every function writes its PNG atomically (a
temporary file beside the target, then ``os.replace``) and returns the path written.

Responses are the RBJ magnitude responses of :mod:`neuraleq_jax.model.response` at ``sample_rate``,
drawn from 20 Hz to 20 kHz (or to just below Nyquist for lower rates, where band frequencies
above 0.45·fs are lowered exactly as :func:`neuraleq_jax.audio.filtering.apply_eq` lowers them).
"""

from neuraleq_jax.plots.figures import require_matplotlib
from neuraleq_jax.plots.maps import plot_latent_2d, plot_word_map
from neuraleq_jax.plots.responses import (
    PLOT_POINTS,
    PLOT_RANGE_HZ,
    plot_envelope,
    plot_envelope_comparison,
    plot_morph,
    plot_responses,
)

__all__ = [
    "PLOT_POINTS",
    "PLOT_RANGE_HZ",
    "plot_envelope",
    "plot_envelope_comparison",
    "plot_latent_2d",
    "plot_morph",
    "plot_responses",
    "plot_word_map",
    "require_matplotlib",
]
