"""ITU-R BS.1770-4 loudness: the K-weighting filter at any sample rate and integrated loudness.

The functions here take checked inputs (a float64 ``[T, C]`` array, a positive sample rate);
:func:`neuraleq_jax.audio.filtering.integrated_loudness` and
:func:`neuraleq_jax.audio.filtering.k_weighting_sos`
are the checked entry points.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal

# ITU-R BS.1770-4, tables 1 and 2: the two K-weighting stages (b, a) as published for 48 kHz.
_BS1770_SHELF_48K = (
    (1.53512485958697, -2.69169618940638, 1.19839281085285),
    (1.0, -1.69065929318241, 0.73248077421585),
)
_BS1770_HIGHPASS_48K = ((1.0, -2.0, 1.0), (1.0, -1.99004745483398, 0.99007225036621))
_BS1770_OFFSET_DB = -0.691
_BS1770_WEIGHTS_5_1 = (1.0, 1.0, 1.0, 0.0, 1.41, 1.41)  # L R C LFE Ls Rs


def _design_k_stage(b48, a48, sample_rate: float, shelf: bool) -> np.ndarray:
    """One K-weighting stage re-designed for ``sample_rate``: a ``[6]`` second-order section.

    Writing a bilinear-transformed biquad with ``K = tan(π f0 / fs)`` as
    ``a = [1 + K/Q + K², 2(K²−1), 1 − K/Q + K²] / (1 + K/Q + K²)`` and, for the shelf,
    ``b = [Vh + Vb·K/Q + K², 2(K² − Vh), Vh − Vb·K/Q + K²] / (1 + K/Q + K²)`` gives
    ``K² = (1+a1+a2)/(1−a1+a2)``, ``K/Q = 2(1−a2)/(1−a1+a2)``,
    ``Vh = (b0−b1+b2)/(1−a1+a2)`` (gain at Nyquist) and ``Vb = (b0−b2)/(1−a2)``. We solve these
    at 48 kHz, keep f0, Q, Vh and Vb, and evaluate the same form at ``sample_rate``; at 48 kHz
    it returns the published values.
    The high-pass keeps the standard's unnormalised numerator ``[1, −2, 1]``.
    """
    _, a1, a2 = a48
    k48 = math.sqrt((1 + a1 + a2) / (1 - a1 + a2))
    q = k48 / (2 * (1 - a2) / (1 - a1 + a2))
    f0 = 48_000.0 / math.pi * math.atan(k48)
    k = math.tan(math.pi * f0 / sample_rate)
    a0 = 1 + k / q + k * k
    a = np.array([a0, 2 * (k * k - 1), 1 - k / q + k * k]) / a0
    if not shelf:
        return np.concatenate([b48, a])
    b0, b1, b2 = b48
    vh = (b0 - b1 + b2) / (1 - a1 + a2)
    vb = (b0 - b2) / (1 - a2)
    b = np.array([vh + vb * k / q + k * k, 2 * (k * k - vh), vh - vb * k / q + k * k]) / a0
    return np.concatenate([b, a])


def k_weighting_sections(sample_rate: float) -> np.ndarray:
    """BS.1770 K-weighting (pre-filter shelf, then RLB high-pass) as float64 ``[2, 6]`` sections."""
    return np.stack(
        [
            _design_k_stage(*_BS1770_SHELF_48K, sample_rate, shelf=True),
            _design_k_stage(*_BS1770_HIGHPASS_48K, sample_rate, shelf=False),
        ]
    )


def integrated_loudness(x_TxC: np.ndarray, sample_rate: float) -> float:
    """Integrated loudness in LUFS of float64 audio ``[T, C]`` (see
    :func:`neuraleq_jax.audio.filtering.integrated_loudness`)."""
    frames, channels = x_TxC.shape
    weights_C = np.array(_BS1770_WEIGHTS_5_1 if channels == 6 else (1.0,) * channels)
    y_TxC = scipy.signal.sosfilt(k_weighting_sections(sample_rate), x_TxC, axis=0)
    block = min(frames, round(0.4 * sample_rate))
    n_blocks = 1 + int((frames - block) // (0.1 * sample_rate))
    starts = np.round(np.arange(n_blocks) * 0.1 * sample_rate).astype(np.int64)
    energy = np.concatenate([np.zeros((1, channels)), np.cumsum(y_TxC**2, axis=0)])
    power_J = np.maximum((energy[starts + block] - energy[starts]) / block, 0.0) @ weights_C
    with np.errstate(divide="ignore"):
        loudness_J = _BS1770_OFFSET_DB + 10 * np.log10(power_J)
    gated = loudness_J > -70.0
    if not gated.any():
        return -math.inf
    relative_gate = _BS1770_OFFSET_DB + 10 * math.log10(power_J[gated].mean()) - 10.0
    gated &= loudness_J > relative_gate
    return _BS1770_OFFSET_DB + 10 * math.log10(power_J[gated].mean())
