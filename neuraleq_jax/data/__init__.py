"""Data sets: the labelled-settings type and its splits (:mod:`.dataset`), the registry of named
data sets a config can ask for (:mod:`.registry`), and one module per source: :mod:`.synthetic`,
:mod:`.safedb`, :mod:`.curves` (40-band crowd curves and the 5-band fit), :mod:`.audealize`,
:mod:`.crowd` (the fused crowd vocabulary) and :mod:`.fetch` (downloads). :mod:`.vocabulary`
holds what a model knows of its words (sources, agreement, the word map).

A new data set is a module here and one entry in :data:`.registry.DATASETS`.
"""
