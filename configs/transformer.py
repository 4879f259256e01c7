"""The synthetic preset with the transformer encoder (five band tokens, self-attention).

    python -m neuraleq_jax.train --config transformer --workdir runs/transformer

The attention encoder clusters the words more readily than the residual one and drops
frequency and Q sooner, so its silhouette term is lighter (0.3; see scripts/frontier.py).
"""

import dataclasses
from pathlib import Path

from neuraleq_jax.config import load_preset


def get_config():
    base = load_preset(str(Path(__file__).with_name("synthetic.py")))
    return dataclasses.replace(
        base,
        name="transformer",
        model=dataclasses.replace(
            base.model,
            encoder="transformer",
            transformer_dim=64,
            transformer_heads=4,
            transformer_layers=2,
        ),
        train=dataclasses.replace(base.train, cluster_weight=0.3),
    )
