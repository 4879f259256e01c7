"""Training: the pure steps and the compiled programs on a device mesh (:mod:`.steps`), the epoch
loop (:mod:`.trainer`), its host-side log and resume (:mod:`.epoch_log`), checkpoints and the
model bundle (:mod:`.checkpoints`), a run's folder (:mod:`.workdir`) and a whole run of an
:class:`~neuraleq_jax.config.ExperimentConfig` in a workdir (:mod:`.experiment`).
"""
