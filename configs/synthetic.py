"""Default preset: the synthetic set (8 words × 70 settings), residual encoder.

    python -m neuraleq_jax.train --config synthetic --workdir runs/synthetic

The reference budget (latent 32, 50 epochs, batch 16, Adam). The latent is 8 semantic dimensions,
which the contrastive and silhouette terms shape (silhouette weight 1), then 24 detail
dimensions that only reconstruction shapes, so clustering the words no longer costs
reconstruction. Dropout is off. Two augmentations keep a few hundred settings from being
memorised: each band takes the frequency and Q of another setting of the batch (in this set they
carry no word information in the synthetic set), and unit-space jitter of 0.05. Adam peaks at 2e-3 and decays
along a cosine. scripts/frontier.py measures silhouette against response error around these.
"""

import dataclasses

from neuraleq_jax.config import DataConfig, ExperimentConfig, TrainConfig
from neuraleq_jax.model.networks import ModelConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="synthetic",
        model=dataclasses.replace(
            ModelConfig(), encoder="residual", latent_dim=32, semantic_dim=8, dropout=0.0
        ),
        train=TrainConfig(
            epochs=50,
            batch_size=16,
            learning_rate=2e-3,
            schedule="cosine",
            cluster_weight=1.0,
            augment_noise=0.05,
            augment_shuffle_freq_q=True,
            word_model_freq_q_crossings=8,
        ),
        data=DataConfig(dataset="synthetic", per_word=70),
    )
