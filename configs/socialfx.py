"""SocialFX's contributions: one fitted setting per person who taught a word (English, Spanish).

    neuraleq data fetch socialfx --dest data/
    python -m neuraleq_jax.train --config socialfx \\
        --data.path=data/eq_contributions.csv --workdir runs/socialfx
    python -m neuraleq_jax.evaluate --workdir runs/socialfx

Every contribution's 40-band curve (1 dB per unit of its weights: the unit rule of
neuraleq_jax.data.socialfx) is fitted to 5 bands by the batched fit (cached) and labelled with its
word; the words are those with at least ``data.min_examples`` (5) contributions: 49 words of the
shared copy (1,421 contributions), 53 of the upstream file. Each contribution is one contributor,
so the 0.7/0.15/0.15 split, stratified by word, is a split by contribution: a word's spread is the
real spread of the people who drew it, not one invented around a mean curve.
"""

import dataclasses

from neuraleq_jax.config import DataConfig, ExperimentConfig, TrainConfig
from neuraleq_jax.model.networks import ModelConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="socialfx",
        model=dataclasses.replace(ModelConfig(), latent_dim=32, dropout=0.0),
        train=TrainConfig(epochs=30, batch_size=32, learning_rate=1e-3, schedule="cosine"),
        data=DataConfig(
            dataset="socialfx",
            path="REQUIRED: --data.path=eq_contributions.csv (from neuraleq data fetch socialfx)",
            min_examples=5,
            split_fractions=(0.7, 0.15, 0.15),
            layout="spec",
        ),
    )
