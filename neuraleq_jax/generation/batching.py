"""The old home of :mod:`neuraleq_jax.sharding`, kept importable: this name is that module
itself (not a copy), so reading or setting an attribute here reads or sets it there."""

import sys

from neuraleq_jax import sharding

sys.modules[__name__] = sharding
