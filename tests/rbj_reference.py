"""An independent float64 RBJ cookbook reference, written out directly (not through the library),
that preset, server and host tests compare the library's responses with."""

import math

import numpy as np
import scipy.signal

from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT

FS = 48_000.0
GRID = np.geomspace(20.0, 20_000.0, 512)
WARM = np.array(
    [3.5, 120, 0.71, -2, 400, 1.0, 0.5, 1000, 2.0, 1.5, 5000, 0.5, -4, 12000, 0.7], np.float32
)


def rbj_sos(kind, gain_db, freq, q, fs=FS):
    """Cookbook biquad in float64, written out directly (not via the library)."""
    amp = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * freq / fs
    cos, alpha = math.cos(w0), math.sin(w0) / (2 * q)
    if kind == "peaking":
        b = [1 + alpha * amp, -2 * cos, 1 - alpha * amp]
        a = [1 + alpha / amp, -2 * cos, 1 - alpha / amp]
    elif kind == "low_shelf":
        k = 2 * math.sqrt(amp) * alpha
        b = [
            amp * ((amp + 1) - (amp - 1) * cos + k),
            2 * amp * ((amp - 1) - (amp + 1) * cos),
            amp * ((amp + 1) - (amp - 1) * cos - k),
        ]
        a = [
            (amp + 1) + (amp - 1) * cos + k,
            -2 * ((amp - 1) + (amp + 1) * cos),
            (amp + 1) + (amp - 1) * cos - k,
        ]
    else:
        k = 2 * math.sqrt(amp) * alpha
        b = [
            amp * ((amp + 1) + (amp - 1) * cos + k),
            -2 * amp * ((amp - 1) + (amp + 1) * cos),
            amp * ((amp + 1) + (amp - 1) * cos - k),
        ]
        a = [
            (amp + 1) - (amp - 1) * cos + k,
            2 * ((amp - 1) - (amp + 1) * cos),
            (amp + 1) - (amp - 1) * cos - k,
        ]
    return np.array(b + a) / a[0]


def reference_db(filters, freqs=GRID):
    """Summed dB response of ``[(kind, gain, freq, q), ...]`` via scipy."""
    if not filters:
        return np.zeros(len(freqs))
    sos = np.stack([rbj_sos(*f) for f in filters])
    _, h = scipy.signal.sosfreqz(sos, worN=freqs, fs=FS)
    return 20 * np.log10(np.abs(h))


def setting_db(setting_P, freqs=GRID):
    row = np.asarray(setting_P, np.float64).reshape(5, 3)
    return reference_db([(k, g, f, q) for k, (g, f, q) in zip(DEFAULT_LAYOUT.kinds, row)], freqs)
