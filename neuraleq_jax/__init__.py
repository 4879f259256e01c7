"""neuraleq_jax: words for sound → 5-band parametric EQ settings, in JAX/Flax."""

from neuraleq_jax.data import EQDataset
from neuraleq_jax.paramspace import DEFAULT_LAYOUT, Band, EQLayout
from neuraleq_jax.response import magnitude_response_db, second_order_sections
from neuraleq_jax.synthetic import VOCABULARY, make_synthetic
from neuraleq_jax.system import NeuralEQMorphingSystem, use_synchronous_cpu_dispatch

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
