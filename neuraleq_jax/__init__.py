"""neuraleq_jax: words for sound → 5-band parametric EQ settings, in JAX/Flax."""

from neuraleq_jax.data.dataset import EQDataset
from neuraleq_jax.data.synthetic import VOCABULARY, make_synthetic
from neuraleq_jax.generation.serving import use_synchronous_cpu_dispatch
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, Band, EQLayout
from neuraleq_jax.model.response import magnitude_response_db, second_order_sections
from neuraleq_jax.system import NeuralEQMorphingSystem

__all__ = [
    "DEFAULT_LAYOUT",
    "Band",
    "EQDataset",
    "EQLayout",
    "NeuralEQMorphingSystem",
    "VOCABULARY",
    "magnitude_response_db",
    "make_synthetic",
    "second_order_sections",
    "use_synchronous_cpu_dispatch",
]
__version__ = "0.1.0"
