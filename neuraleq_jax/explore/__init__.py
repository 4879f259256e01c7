"""Exploring at scale into a chunked on-disk store: the Zarr store (:mod:`.store`) and the writer
that streams, scores, resumes and shares rows between processes (:mod:`.writer`). The sampling
itself is the functional core's (:mod:`neuraleq_jax.generation.explore`).
"""
