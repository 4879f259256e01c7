"""The functional generation core: word models, generate, morph, explore, strength.

Everything here is a pure function of ``(params, model_config, word_model, inputs, key)``.
A *word model* is a dict of NumPy arrays, each per-word array with a leading word axis ``W``,
fitted once after training (:func:`fit_word_model`) and stored in the checkpoint bundle; it
holds, per word, a kernel density over the word's encoded training latents (variations are
draws from it, decoded; its bandwidth is calibrated on validation data) and the latent centre
(decoded: the word's centre setting, where morphs start and end), plus what exploration needs
(a Gaussian over all training latents and the dB responses of training settings for novelty
ranking).

Modules: :mod:`.sampling` (variations of words and blends), :mod:`.morph` (response-evenly
spaced paths), :mod:`.explore` (chunked, streaming, novelty top-k), :mod:`.word_model` (fitting
the word model) and :mod:`.common` (decoding, encoding, strength, blend centres); large batches
are laid out by :mod:`neuraleq_jax.sharding` (row tiles, devices); :mod:`.serving` compiles
the single-setting path the facade answers with. The public names are importable from here:
``from neuraleq_jax import generation; generation.generate(...)``.

Words enter as weight vectors over the vocabulary (``[W]`` or ``[B, W]``): a one-hot row is one
word, several non-zero entries blend words (see :mod:`neuraleq_jax.language.compound`). Weights are
normalised to sum 1 inside every function.

The device-side work is jit-compiled; the public functions are thin wrappers that check shapes
and pass only the word-model arrays each computation needs, so a large novelty reference never
travels with a call that does not use it.
"""

from neuraleq_jax.generation.common import (
    BLEND_STEPS,
    apply_strength,
    blend_needs_correction,
    bucket_size,
    centre_settings,
    decode_latents,
    encode_latents,
    one_hot,
)
from neuraleq_jax.generation.crossing import cross_frequency_and_q
from neuraleq_jax.generation.explore import (
    ACCELERATOR_EXPLORE_CHUNK,
    EXPLORE_CHUNK,
    EXPLORE_KEYS,
    NOVELTY_KEYS,
    default_explore_chunk,
    explore,
    explore_chunks,
    explore_latents,
    explore_novel,
    explore_range,
    novelty_db,
)
from neuraleq_jax.generation.morph import MORPH_KEYS, morph
from neuraleq_jax.generation.sampling import (
    GENERATE_KEYS,
    blend_variations,
    generate,
    word_variations,
)
from neuraleq_jax.generation.word_model import BANDWIDTHS, PROTOTYPE_ANCHOR, fit_word_model
