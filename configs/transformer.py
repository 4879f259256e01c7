"""The synthetic preset with the transformer encoder (five band tokens, self-attention).

    python -m neuraleq_jax.train --config transformer --workdir runs/transformer

The attention encoder clusters the words more readily than the residual one and drops
frequency and Q sooner, so its silhouette term is lighter (0.3; see scripts/frontier.py).
"""

import dataclasses
import importlib.util
from pathlib import Path


def _synthetic():
    spec = importlib.util.spec_from_file_location(
        "neuraleq_config_synthetic", Path(__file__).with_name("synthetic.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def get_config():
    base = _synthetic()
    return dataclasses.replace(
        base, name="transformer",
        model=dataclasses.replace(base.model, encoder="transformer", transformer_dim=64,
                                  transformer_heads=4, transformer_layers=2),
        train=dataclasses.replace(base.train, cluster_weight=0.3))
