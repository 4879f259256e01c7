"""SAFE-DB (Stables et al. 2014): real crowd settings, words with >= 20 examples (warm, bright).

    python -m neuraleq_jax.train --config safe --workdir runs/safe
    python -m neuraleq_jax.evaluate --workdir runs/safe

Reads ../shared/data/safe-db/SAFEEqualiserUserData.csv (or --data.path=FILE, or
$NEURALEQ_SHARED_DATA). Settings keep SAFE's own slider ranges (``data.layout=safe``), so nothing
is clipped; ``--data.layout=spec`` clips into SPEC's ranges instead. The split is by contributor
(no contributor in two parts); 0.6/0.2/0.2 because a handful of contributors hold most rows, and
the held-out part must still hold several of them. Real descriptors are noisy: a variation as
wide as the crowd's is often mistaken for the other word, so variations are drawn at 0.8 of the
data's gain spread (``--train.variation_ratio``) and a quarter of its frequency/Q spread.
"""

import dataclasses

from neuraleq_jax.config import DataConfig, ExperimentConfig, TrainConfig
from neuraleq_jax.models import ModelConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="safe",
        model=dataclasses.replace(ModelConfig(), latent_dim=32, dropout=0.1),
        # variation_ratio chosen on the validation contributors (never on the test ones): the
        # widest spread whose generated settings are recognised as their word at least as often
        # as the validation contributors' own (0.6: 0.97, 0.7: 0.94, 0.8: 0.90, 1.0: 0.83 vs 0.86)
        train=TrainConfig(epochs=30, batch_size=32, learning_rate=1e-3, variation_ratio=0.8,
                          freq_q_spread=0.25),
        data=DataConfig(dataset="safe", min_examples=20, words=("warm", "bright"),
                        split_fractions=(0.6, 0.2, 0.2), layout="safe"),
    )
