"""The quality figures as pure functions of arrays: RMS-dB and energy distances
(:mod:`.distances`), fidelity to the data (:mod:`.fidelity`), the latent silhouette
(:mod:`.silhouette`), the generator's figures (:mod:`.quality`) and the goals they are judged
against (:mod:`.goals`). Nothing here knows of a model: a new figure is a function here and,
when it has a goal, one entry in :data:`.goals.GOALS`.
"""
