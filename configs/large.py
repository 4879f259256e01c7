"""Large-scale preset: a much bigger synthetic set, wider model, bigger batches, cosine decay.

Meant for accelerators (the global batch is split over every device on the ``data`` axis;
1024 is divisible by any power-of-two device count up to 1024):

    python -m neuraleq_jax.train --config large --workdir runs/large

Multi-host: add --distributed.coordinator_address=HOST:PORT --distributed.num_processes=N
--distributed.process_id=I on each host.
"""

import dataclasses

from neuraleq_jax.config import DataConfig, ExperimentConfig, TrainConfig
from neuraleq_jax.model.networks import ModelConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="large",
        model=dataclasses.replace(
            ModelConfig(),
            latent_dim=32,
            embedding_dim=128,
            encoder_widths=(512, 1024, 512),
            decoder_widths=(512, 1024, 512),
            mlp_width=256,
            dropout=0.0,
        ),
        train=TrainConfig(
            epochs=100,
            batch_size=1024,
            learning_rate=1e-3,
            schedule="warmup_cosine",
            warmup_epochs=2,
            grad_clip=1.0,
            checkpoint_every=5,
        ),
        data=DataConfig(dataset="synthetic", per_word=50_000),
    )
