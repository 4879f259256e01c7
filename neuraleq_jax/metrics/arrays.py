"""Checked host arrays and reference-grid responses shared by the evaluation modules."""

from __future__ import annotations

import numpy as np

from neuraleq_jax.model import paramspace, response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout


def responses_db(
    settings_NxP,
    *,
    layout: EQLayout = DEFAULT_LAYOUT,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> np.ndarray:
    """dB responses on the reference grid: ``[..., n_params]`` → float64 ``[..., 256]``."""
    settings = check_settings(settings_NxP, layout, "settings", min_ndim=1)
    flat = settings.reshape(-1, layout.n_params)
    # pad the row count to a power of two so the jitted response compiles for few shapes
    bucket = max(8, 1 << max(0, len(flat) - 1).bit_length())
    padded = np.concatenate(
        [
            flat,
            np.broadcast_to(paramspace.flat_setting(layout), (bucket - len(flat), layout.n_params)),
        ]
    )
    out = response.reference_response_db(
        padded.astype(np.float32), sample_rate=float(sample_rate), layout=layout
    )
    return np.asarray(out, dtype=np.float64)[: len(flat)].reshape(settings.shape[:-1] + (-1,))


def rms(a_xF, b_xF) -> np.ndarray:
    """RMS over the last axis of ``a - b`` (broadcasting): the RMS-dB distance of responses."""
    return response.rms_db(a_xF, b_xF, xp=np)


def check_settings(array, layout: EQLayout, name: str, *, min_ndim: int = 2) -> np.ndarray:
    """Host float32 copy of finite settings ``[..., n_params]`` (ranges are checked elsewhere)."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim < min_ndim or array.shape[-1] != layout.n_params:
        raise ValueError(
            f"{name} must have shape [..., {layout.n_params}] with at least "
            f"{min_ndim} dims; got {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite (found NaN or Inf)")
    return array


def check_word_ids(word_ids_N, n: int, n_words: int, name: str = "word_ids") -> np.ndarray:
    """Integer word ids ``[n]`` in ``[0, n_words)``, else a ValueError naming ``name``."""
    ids = np.asarray(word_ids_N)
    if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} must be integer [{n}], got {ids.dtype} {ids.shape}")
    if n and (ids.min() < 0 or ids.max() >= n_words):
        raise ValueError(f"{name} must lie in [0, {n_words}), got {ids.min()}..{ids.max()}")
    return ids
