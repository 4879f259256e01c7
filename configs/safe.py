"""SAFE-DB (Stables et al. 2014): real crowd settings, words with >= 20 examples (warm, bright).

    python -m neuraleq_jax.train --config safe --workdir runs/safe
    python -m neuraleq_jax.evaluate --workdir runs/safe

Reads ../shared/data/safe-db/SAFEEqualiserUserData.csv (or --data.path=FILE, or
$NEURALEQ_SHARED_DATA). Settings keep SAFE's own slider ranges (``data.layout=safe``), so nothing
is clipped; ``--data.layout=spec`` clips into the standard ranges instead. The split is by contributor
(no contributor in two parts); 0.6/0.2/0.2 because a handful of contributors hold most rows, and
the held-out part must still hold several of them. Variations are drawn from each word's
kernel density over its training latents, its bandwidth calibrated on the validation
contributors (``--train.variation_ratio`` scales it).
"""

import dataclasses

from neuraleq_jax.config import DataConfig, ExperimentConfig, TrainConfig
from neuraleq_jax.model.networks import ModelConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="safe",
        model=dataclasses.replace(ModelConfig(), latent_dim=32, dropout=0.1),
        train=TrainConfig(epochs=30, batch_size=32, learning_rate=1e-3, variation_ratio=1.0),
        data=DataConfig(
            dataset="safe",
            min_examples=20,
            words=("warm", "bright"),
            split_fractions=(0.6, 0.2, 0.2),
            layout="safe",
        ),
    )
