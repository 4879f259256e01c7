"""Evaluating systems on held-out data: the lite baseline (:mod:`.baseline`), every figure of a
system (:mod:`.evaluator`), a trained workdir (:mod:`.workdirs`, behind ``neuraleq evaluate``),
crowd vocabularies (:mod:`.crowd`) and the Markdown report (:mod:`.report`).

The figures themselves are pure functions of arrays in :mod:`neuraleq_jax.metrics`.
"""
