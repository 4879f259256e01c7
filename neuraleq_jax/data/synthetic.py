"""The synthetic data set: eight words, gain boxes, log-uniform frequency and Q."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from neuraleq_jax.data.dataset import EQDataset
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT

VOCABULARY = ("warm", "bright", "heavy", "soft", "sharp", "smooth", "punchy", "hollow")

# [word, band, (low, high)] gain boxes in dB, in VOCABULARY order.
GAIN_BOXES_DB = np.array(
    [
        [[2, 6], [0, 3], [-2, 1], [-3, 0], [-4, -1]],  # warm
        [[-3, 0], [-2, 1], [-1, 2], [1, 4], [2, 6]],  # bright
        [[4, 8], [2, 5], [-1, 2], [-2, 1], [-3, 0]],  # heavy
        [[0, 2], [-1, 1], [-2, 0], [-4, -1], [-5, -2]],  # soft
        [[-2, 1], [0, 3], [2, 5], [3, 6], [1, 4]],  # sharp
        [[-1, 2], [-1, 1], [-2, 1], [-3, 0], [-2, 1]],  # smooth
        [[1, 4], [3, 6], [2, 4], [-1, 2], [-2, 1]],  # punchy
        [[0, 3], [-4, -1], [-5, -2], [-3, 0], [1, 4]],  # hollow
    ],
    dtype=np.float32,
)

REFERENCE_PER_WORD = 70


@functools.partial(jax.jit, static_argnames=("per_word",))
def sample_settings(key: jax.Array, per_word: int) -> tuple[jax.Array, jax.Array]:
    """Draw ``per_word`` settings for every word, all at once.

    Returns:
      ``(settings [8 * per_word, 15], word_ids [8 * per_word])``, grouped by word in
      vocabulary order. Gains are uniform in the word's box; frequency and Q log-uniform in
      the band's range, independent of the word.
    """
    layout = DEFAULT_LAYOUT
    n_words, n_bands = GAIN_BOXES_DB.shape[:2]
    gain_key, freq_key, q_key = jax.random.split(key, 3)
    shape = (n_words, per_word, n_bands)
    low, high = GAIN_BOXES_DB[:, None, :, 0], GAIN_BOXES_DB[:, None, :, 1]
    gains = jax.random.uniform(gain_key, shape, minval=low, maxval=high)

    def log_uniform(k, index):
        lo = np.log(layout.lower[index]).astype(np.float32)
        hi = np.log(layout.upper[index]).astype(np.float32)
        return jnp.exp(jax.random.uniform(k, shape, minval=lo, maxval=hi))

    freqs = log_uniform(freq_key, layout.freq_indices)
    qs = log_uniform(q_key, layout.q_indices)
    settings = jnp.stack([gains, freqs, qs], axis=-1).reshape(n_words * per_word, 3 * n_bands)
    # exp(log(x)) can land an ulp outside the range
    settings = jnp.clip(settings, layout.lower.astype(np.float32), layout.upper.astype(np.float32))
    word_ids = jnp.repeat(jnp.arange(n_words, dtype=jnp.int32), per_word)
    return settings, word_ids


def make_synthetic(per_word: int = REFERENCE_PER_WORD, seed: int = 0) -> EQDataset:
    """The synthetic data set: ``per_word`` settings for each of the 8 words, reproducible by seed."""
    if int(per_word) < 1:
        raise ValueError(f"per_word must be >= 1, got {per_word}")
    settings, word_ids = sample_settings(jax.random.key(seed), int(per_word))
    return EQDataset(np.asarray(settings), np.asarray(word_ids), VOCABULARY, DEFAULT_LAYOUT)
