"""Audealize's crowd vocabulary: every word of its eqdescriptors.json in one model.

    neuraleq data fetch audealize --dest data/
    python -m neuraleq_jax.train --config audealize \\
        --data.path=data/eqdescriptors.json --workdir runs/adz
    python -m neuraleq_jax.evaluate --workdir runs/adz

Every word of the file (English and Spanish) is in the vocabulary: nothing is held out by word.
Each curve is fitted once (batched JAX fit, cached), then gets ``data.per_word`` settings whose
responses spread around the fit like the crowd's uncertainty (audealize.spread_db: narrow for
many contributors who agreed, wide for two who did not; ``--data.spread_scale`` scales it).
Validation holds out 15 % of each word's variations (and, having no test part, is what
evaluation scores, so the word model's kernel bandwidth is calibrated on a fifth of the
training part instead).
"""

import dataclasses

from neuraleq_jax.config import DataConfig, ExperimentConfig, TrainConfig
from neuraleq_jax.model.networks import ModelConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="audealize",
        model=dataclasses.replace(ModelConfig(), latent_dim=32, dropout=0.0),
        train=TrainConfig(epochs=30, batch_size=64, learning_rate=1e-3, schedule="cosine"),
        data=DataConfig(
            dataset="audealize",
            path="REQUIRED: --data.path=eqdescriptors.json (from neuraleq data fetch audealize)",
            per_word=24,
            split_fractions=(0.85, 0.15),
            layout="spec",
        ),
    )
