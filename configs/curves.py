"""40-band curve data (SocialEQ / Audealize format) fitted to 5-band settings, then trained on.

    python -m neuraleq_jax.train --config curves --data.path=my_curves.json --workdir runs/curves

The file holds entries ``{"word", "gains_db" (40 values), "agreement"?, "count"?}`` (see
neuraleq_jax.data.curves); each curve is fitted by the batched JAX fit and curves fitted worse than
``data.max_fit_rms_db`` are left out. ``--data.words=warm,bright`` keeps only those words.
"""

from neuraleq_jax.config import DataConfig, ExperimentConfig, TrainConfig
from neuraleq_jax.model.networks import ModelConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="curves",
        model=ModelConfig(latent_dim=32, dropout=0.0),
        train=TrainConfig(epochs=50, batch_size=16, learning_rate=1e-3),
        data=DataConfig(
            dataset="curves",
            path="REQUIRED: --data.path=FILE.json",
            max_fit_rms_db=1.0,
            split_fractions=(0.7, 0.15, 0.15),
        ),
    )
