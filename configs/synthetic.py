"""Default preset: the SPEC §3 synthetic set (8 words × 70 settings), residual encoder.

    python -m neuraleq_jax.train --config synthetic --workdir runs/synthetic

SPEC §4 defaults (latent 32, 50 epochs, batch 16, Adam 1e-3). Dropout is off: on a few hundred
settings it costs more reconstruction precision than it buys. The loss weights are the
TrainConfig defaults (contrastive 0.1 at τ 0.1, latent silhouette term 0.5, response 20);
scripts/frontier.py measures how silhouette trades against response error around them.
"""

import dataclasses

from neuraleq_jax.config import DataConfig, ExperimentConfig, TrainConfig
from neuraleq_jax.models import ModelConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="synthetic",
        model=dataclasses.replace(ModelConfig(), encoder="residual", latent_dim=32, dropout=0.0),
        train=TrainConfig(epochs=50, batch_size=16, learning_rate=1e-3),
        data=DataConfig(dataset="synthetic", per_word=70),
    )
