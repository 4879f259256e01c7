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
are laid out by :mod:`neuraleq_jax.sharding` (row tiles, devices). Every name is importable from here:
``from neuraleq_jax import generation; generation.generate(...)``.

Words enter as weight vectors over the vocabulary (``[W]`` or ``[B, W]``): a one-hot row is one
word, several non-zero entries blend words (see :mod:`neuraleq_jax.compound`). Weights are
normalised to sum 1 inside every function.

The device-side work is jit-compiled; the public functions are thin wrappers that check shapes
and pass only the word-model arrays each computation needs, so a large novelty reference never
travels with a call that does not use it.
"""

from neuraleq_jax.generation import batching  # the old name of neuraleq_jax.sharding
from neuraleq_jax.generation.common import (
    BLEND_STEPS,
    _as_float32,
    _blend_centre,
    _decode_physical,
    _in_latent_range,
    _select,
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
    _explore_chunk,
    default_explore_chunk,
    explore,
    explore_chunks,
    explore_latents,
    explore_novel,
    explore_range,
    novelty_db,
)
from neuraleq_jax.generation.morph import MORPH_KEYS, _morph, morph
from neuraleq_jax.generation.sampling import (
    GENERATE_KEYS,
    _generate,
    blend_variations,
    generate,
    word_variations,
)
from neuraleq_jax.generation.word_model import BANDWIDTHS, PROTOTYPE_ANCHOR, fit_word_model
from neuraleq_jax.sharding import (
    ACCELERATOR_SPLIT,
    CPU_TILE,
    LARGE_BATCH,
    BatchPlan,
    large_batch_plan,
)
from neuraleq_jax.sharding import map_tiles as _map_tiles
from neuraleq_jax.sharding import over_rows as _over_rows
from neuraleq_jax.sharding import pad_rows as _take_rows
from neuraleq_jax.sharding import place as _place
