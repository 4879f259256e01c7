"""Magnitude response of a setting: RBJ "Audio EQ Cookbook" biquads, pure jnp.

Shelves use the cookbook's Q form of the slope. Everything here is jit/vmap friendly and
differentiable in all parameters; shapes broadcast over any leading batch dimensions.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from neuraleq_jax.model import paramspace
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout

DEFAULT_SAMPLE_RATE = 48_000.0
REFERENCE_POINTS = 256
REFERENCE_RANGE_HZ = (20.0, 20_000.0)


def reference_frequencies(
    n_points: int = REFERENCE_POINTS,
    low_hz: float = REFERENCE_RANGE_HZ[0],
    high_hz: float = REFERENCE_RANGE_HZ[1],
) -> np.ndarray:
    """The grid responses are compared on: ``n_points`` log-spaced frequencies in Hz,
    float32 ``[F]``."""
    return np.geomspace(low_hz, high_hz, n_points).astype(np.float32)


REFERENCE_FREQS = reference_frequencies()


def _band_coefficients(kind: str, gain_db, freq_hz, q, sample_rate, xp=jnp):
    """Normalised (a0 = 1) coefficients of one band kind: ``b, a`` each ``[..., 3]``.

    ``xp`` is ``jnp`` (traced, float32) or ``np`` (host, float64 for filtering audio).
    """
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * freq_hz / sample_rate
    cos_w0 = xp.cos(w0)
    alpha = xp.sin(w0) / (2.0 * q)
    if kind == "peaking":
        b = (1.0 + alpha * amp, -2.0 * cos_w0, 1.0 - alpha * amp)
        a = (1.0 + alpha / amp, -2.0 * cos_w0, 1.0 - alpha / amp)
    else:
        two_sqrt_amp_alpha = 2.0 * xp.sqrt(amp) * alpha
        ap1, am1 = amp + 1.0, amp - 1.0
        # the high shelf is the low shelf with the sign of cos(w0) flipped
        sign = 1.0 if kind == "low_shelf" else -1.0
        b = (
            amp * (ap1 - sign * am1 * cos_w0 + two_sqrt_amp_alpha),
            sign * 2.0 * amp * (am1 - sign * ap1 * cos_w0),
            amp * (ap1 - sign * am1 * cos_w0 - two_sqrt_amp_alpha),
        )
        a = (
            ap1 + sign * am1 * cos_w0 + two_sqrt_amp_alpha,
            -sign * 2.0 * (am1 + sign * ap1 * cos_w0),
            ap1 + sign * am1 * cos_w0 - two_sqrt_amp_alpha,
        )
    b = xp.stack(b, axis=-1)
    a = xp.stack(a, axis=-1)
    return b / a[..., :1], a / a[..., :1]


def _per_band(params, layout: EQLayout) -> jnp.ndarray:
    """Settings ``[..., n_params]`` as float32 ``[..., n_bands, 3]`` (gain, frequency, Q);
    a ValueError naming the layout for any other width."""
    params = jnp.asarray(params, dtype=jnp.float32)
    paramspace.check_shape(params.shape, layout, "settings")
    return params.reshape(params.shape[:-1] + (layout.n_bands, 3))


def biquad_coefficients(
    params: jnp.ndarray, sample_rate: float = DEFAULT_SAMPLE_RATE, layout: EQLayout = DEFAULT_LAYOUT
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Per-band biquad coefficients of physical settings.

    Args:
      params: ``[..., n_params]`` physical settings (dB, Hz, Q).
      sample_rate: in Hz.
    Returns:
      ``(b, a)``, each ``[..., n_bands, 3]``, normalised so that ``a[..., 0] == 1``.
    """
    per_band = _per_band(params, layout)
    bs, as_ = [], []
    for index, kind in enumerate(layout.kinds):
        gain, freq, q = (per_band[..., index, j] for j in range(3))
        b, a = _band_coefficients(kind, gain, freq, q, sample_rate)
        bs.append(b)
        as_.append(a)
    return jnp.stack(bs, axis=-2), jnp.stack(as_, axis=-2)


def _stable_terms(kind: str, gain_db, freq_hz, q, sample_rate):
    """Cancellation-free terms ``(u, p, m)`` of a band's numerator and denominator.

    For a polynomial ``c0 + c1 z^-1 + c2 z^-2``: ``u = c0 + c1 + c2``, ``p = c0 + c2``,
    ``m = c0 - c2``, written out analytically from the cookbook formulas with
    ``s = sin^2(w0 / 2)``. Forming them from float32 coefficients instead would lose the small
    differences that set a low shelf's response (errors of tenths of a dB at 20–200 Hz).
    Returns ``((u_b, p_b, m_b), (u_a, p_a, m_a))``, unnormalised (a common factor cancels).
    """
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * freq_hz / sample_rate
    s = jnp.sin(0.5 * w0) ** 2
    alpha = jnp.sin(w0) / (2.0 * q)
    if kind == "peaking":
        return (4.0 * s, 2.0, 2.0 * alpha * amp), (4.0 * s, 2.0, 2.0 * alpha / amp)
    sqrt_amp = jnp.sqrt(amp)
    rising = 1.0 + (amp - 1.0) * s
    falling = amp - (amp - 1.0) * s
    if kind == "low_shelf":
        return (
            (8.0 * amp**2 * s, 4.0 * amp * rising, 4.0 * amp * sqrt_amp * alpha),
            (8.0 * s, 4.0 * falling, 4.0 * sqrt_amp * alpha),
        )
    return (
        (8.0 * amp * s, 4.0 * amp * falling, 4.0 * amp * sqrt_amp * alpha),
        (8.0 * amp * s, 4.0 * rising, 4.0 * sqrt_amp * alpha),
    )


def _power(terms, phi):
    """``|c0 + c1 z^-1 + c2 z^-2|^2`` at ``z = e^{jw}``, ``phi = sin^2(w/2)``, from ``(u, p, m)``.

    Identity: ``|.|^2 = (u - 2 phi p)^2 + 4 phi (1 - phi) m^2``; both parts are non-negative.
    """
    u, p, m = (jnp.asarray(t)[..., None] for t in terms)
    return (u - 2.0 * phi * p) ** 2 + 4.0 * phi * (1.0 - phi) * m**2


def band_responses_db(
    params: jnp.ndarray,
    freqs=REFERENCE_FREQS,
    sample_rate: float = DEFAULT_SAMPLE_RATE,
    layout: EQLayout = DEFAULT_LAYOUT,
) -> jnp.ndarray:
    """dB magnitude of each band separately: ``[..., n_params]`` → ``[..., n_bands, F]``."""
    per_band = _per_band(params, layout)
    phi = jnp.sin(jnp.pi * jnp.asarray(freqs, jnp.float32) / sample_rate) ** 2
    bands = []
    for index, kind in enumerate(layout.kinds):
        gain, freq, q = (per_band[..., index, j] for j in range(3))
        numerator, denominator = _stable_terms(kind, gain, freq, q, sample_rate)
        power_ratio = _power(numerator, phi) / _power(denominator, phi)
        bands.append(10.0 * jnp.log10(power_ratio))
    return jnp.stack(bands, axis=-2)


def magnitude_response_db(
    params: jnp.ndarray,
    freqs=REFERENCE_FREQS,
    sample_rate: float = DEFAULT_SAMPLE_RATE,
    layout: EQLayout = DEFAULT_LAYOUT,
) -> jnp.ndarray:
    """dB magnitude response of settings (sum of their bands).

    Args:
      params: ``[..., n_params]`` physical settings.
      freqs: ``[F]`` frequencies in Hz (default: the 256-point reference grid, 20 Hz–20 kHz).
      sample_rate: in Hz (default 48 kHz).
    Returns:
      ``[..., F]`` response in dB.
    """
    return band_responses_db(params, freqs, sample_rate, layout).sum(axis=-2)


@functools.partial(jax.jit, static_argnames=("sample_rate", "layout"))
def reference_response_db(
    params: jnp.ndarray, sample_rate: float = DEFAULT_SAMPLE_RATE, layout: EQLayout = DEFAULT_LAYOUT
) -> jnp.ndarray:
    """Jitted response on the reference grid: ``[..., n_params]`` → ``[..., 256]`` dB."""
    return magnitude_response_db(params, REFERENCE_FREQS, sample_rate, layout)


def rms_db(response_a: jnp.ndarray, response_b: jnp.ndarray, xp=jnp) -> jnp.ndarray:
    """RMS over the last (frequency) axis of the dB difference of two responses ``[..., F]``
    (``xp=np``: computed in NumPy, at the inputs' precision)."""
    return xp.sqrt(xp.mean((response_a - response_b) ** 2, axis=-1))


def equal_step_positions(fractions_S, t_T, responses_TxF, xp=jnp):
    """Where a path reaches given fractions of its length in response (arc-length
    reparametrisation): equal steps in ``fractions_S`` then give equal RMS-dB steps.

    Args:
      fractions_S: ``[S]`` fractions of the path's response length, in ``[0, 1]``.
      t_T: ``[T]`` increasing path parameters at which the path was sampled densely.
      responses_TxF: ``[T, F]`` dB responses of the path at ``t_T``.
      xp: ``jnp`` (traceable) or ``np`` (float64 inputs stay float64).
    Returns:
      ``[S]`` path parameters; a path of zero length maps the fractions linearly onto
      ``[t_T[0], t_T[-1]]``.
    """
    step_T1 = rms_db(responses_TxF[1:], responses_TxF[:-1], xp)
    arc_T = xp.concatenate([xp.zeros(1, step_T1.dtype), xp.cumsum(step_T1)])
    total = arc_T[-1]
    linear_T = (t_T - t_T[0]) / (t_T[-1] - t_T[0])
    arc_T = xp.where(total > 0, arc_T / xp.where(total > 0, total, 1.0), linear_T)
    return xp.interp(fractions_S, arc_T, t_T)


def second_order_sections(
    params, sample_rate: float = DEFAULT_SAMPLE_RATE, layout: EQLayout = DEFAULT_LAYOUT
) -> np.ndarray:
    """Second-order sections for ``scipy.signal.sosfilt``: ``[n_params]`` → float64 ``[n_bands, 6]``.

    Computed in float64 on the host so that filtering audio is not limited by float32
    coefficients. Raises ValueError if a band frequency is not below Nyquist.
    """
    params = np.asarray(params, dtype=np.float64).reshape(layout.n_bands, 3)
    nyquist = sample_rate / 2.0
    if np.any(params[:, 1] >= nyquist):
        raise ValueError(
            f"band frequencies {params[:, 1].tolist()} Hz must be below Nyquist "
            f"({nyquist:g} Hz at sample rate {sample_rate:g} Hz)"
        )
    rows = [
        np.concatenate(_band_coefficients(kind, gain, freq, q, float(sample_rate), xp=np))
        for (gain, freq, q), kind in zip(params, layout.kinds)
    ]
    return np.stack(rows)
