"""The equaliser and the network: the parameter space, the single source of truth for ranges,
layout and normalisation (:mod:`.paramspace`); the RBJ magnitude response (:mod:`.response`);
the Flax encoders and decoder (:mod:`.networks`, where a new encoder is registered); the
training losses (:mod:`.losses`).
"""
