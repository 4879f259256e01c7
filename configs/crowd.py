"""One vocabulary from two crowds: Audealize's word curves and SAFE-DB's settings.

    python -m neuraleq_jax.train --config crowd \\
        --data.path=data/eqdescriptors.json --workdir runs/crowd
    python -m neuraleq_jax.evaluate --workdir runs/crowd

Audealize's words as in ``--config audealize``, plus SAFE-DB's words with at least
``data.min_examples`` (5) settings (SAFE-DB is found as for ``--config safe``: ../shared or
$NEURALEQ_SHARED_DATA), in SPEC's ranges (SAFE's wider sliders are clipped). A word in both
crowds mixes its Audealize variations and SAFE settings in the ratio of their contributors
(neuraleq_jax.crowd). The crowds disagree at times (SAFE's warm vs Audealize's warm: r ≈ 0.69),
so a shared word sits between its sources; the evaluation reports fidelity per source.
"""

import dataclasses

from neuraleq_jax.config import DataConfig, ExperimentConfig, TrainConfig
from neuraleq_jax.models import ModelConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="crowd",
        model=dataclasses.replace(ModelConfig(), latent_dim=32, dropout=0.0),
        train=TrainConfig(epochs=30, batch_size=64, learning_rate=1e-3, schedule="cosine",
                          fold_variations=False),
        data=DataConfig(dataset="crowd", path="REQUIRED: --data.path=eqdescriptors.json",
                        per_word=24, min_examples=5, split_fractions=(0.85, 0.15),
                        layout="spec"),
    )
