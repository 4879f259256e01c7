"""Comparisons of settings computed two ways, with tolerances that follow from float32 round-off.

Two computations that differ only in how XLA orders their sums (matmul shapes, tiling, padding,
device count, AVX2 or AVX-512 kernels) agree only up to round-off, which differs between CPUs.
For a sum of n float32 terms the error relative to the sum of magnitudes is at most
γ_n = n·u / (1 − n·u), with u = 2⁻²⁴ the unit round-off (Higham, *Accuracy and Stability of
Numerical Algorithms*, §3.1). A decode chains such sums through the decoder's layers, each
re-normalised by layer norm, so two decodes of the same latent differ in unit space by about
γ_n with n the summed fan-in along the decoder. Callers state any extra amplification with its
reason (an iterative solve, a longer chain).

Settings are compared in the unit space of ``paramspace`` (log frequency and Q, every parameter
on [-1, 1]), where an error of 1e-4 means the same for every parameter; a relative tolerance on
hertz would instead judge the round-off of ``exp``.
"""

from __future__ import annotations

import numpy as np

from neuraleq_jax.model import paramspace
from neuraleq_jax.model.networks import ModelConfig

UNIT_ROUNDOFF = 2.0**-24
# dB responses in float32 are sums of ~5 band responses of up to ~20 dB over a grid; one
# computed two ways (batch shapes, programs, or float64) differs by a few ulps of the power
# ratios, about 1e-5 dB, also after the RMS's square root: 1e-3 dB leaves a wide margin
RESPONSE_DB_TOL = 1e-3


def gamma(n_terms: int) -> float:
    """Higham's bound γ_n on the relative error of an n-term float32 sum."""
    return n_terms * UNIT_ROUNDOFF / (1.0 - n_terms * UNIT_ROUNDOFF)


def decoder_fan_in(config: ModelConfig) -> int:
    """Summed fan-in along the decoder: latent → each block's two dense layers → the heads."""
    total, width_in = 0, config.latent_dim
    for width in config.decoder_widths:
        total += width_in + width
        width_in = width
    return total + width_in


def decode_tolerance(config: ModelConfig, amplification: float = 1.0) -> float:
    """Largest unit-space difference expected between two float32 decodes of one latent."""
    return amplification * gamma(decoder_fan_in(config))


def unit_conversion_tolerance(layout: paramspace.EQLayout = paramspace.DEFAULT_LAYOUT) -> float:
    """Unit-space error of turning float32 physical values into unit space (and back): ``exp``
    and ``log`` each err by u relative, so a log-scaled parameter w moves by about u·(|w| + 1),
    scaled by 2 / (its range in working space); doubled for the two settings compared."""
    log = np.asarray(layout.log_scaled)
    lower = np.where(log, np.log(np.where(log, layout.lower, 1.0)), layout.lower)
    upper = np.where(log, np.log(np.where(log, layout.upper, 1.0)), layout.upper)
    magnitude = np.maximum(np.abs(lower), np.abs(upper))
    return float(np.max(4.0 * UNIT_ROUNDOFF * (magnitude + 1.0) / (upper - lower)))


def blend_amplification(config: ModelConfig) -> float:
    """Round-off amplification of a word blend's correction: its damped Gauss-Newton systems
    (damping 1e-2 of the Gram matrix's mean eigenvalue) have condition number <= 1 + 100·L."""
    return 1.0 + 100.0 * config.latent_dim


def assert_unit_close(
    actual, expected, tolerance: float, *, layout: paramspace.EQLayout = paramspace.DEFAULT_LAYOUT
) -> None:
    """Settings ``[..., P]`` of the same shape agree within ``tolerance`` in unit space (plus
    :func:`unit_conversion_tolerance`, the round-off of getting there)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    unit_a = np.asarray(paramspace.normalize(actual.astype(np.float32), layout), np.float64)
    unit_e = np.asarray(paramspace.normalize(expected.astype(np.float32), layout), np.float64)
    worst = float(np.max(np.abs(unit_a - unit_e))) if actual.size else 0.0
    tolerance += unit_conversion_tolerance(layout)
    assert worst <= tolerance, (
        f"settings differ by {worst:.3g} in unit space; float32 round-off allows {tolerance:.3g}"
    )


def assert_same_settings(
    actual,
    expected,
    config: ModelConfig,
    *,
    amplification: float = 1.0,
    layout: paramspace.EQLayout = paramspace.DEFAULT_LAYOUT,
) -> None:
    """Two decodes' settings ``[..., P]`` agree within :func:`decode_tolerance`."""
    assert_unit_close(actual, expected, decode_tolerance(config, amplification), layout=layout)
