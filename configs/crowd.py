"""One vocabulary from two crowds: Audealize's word curves and SAFE-DB's settings.

    python -m neuraleq_jax.train --config crowd \\
        --data.path=data/eqdescriptors.json --workdir runs/crowd
    python -m neuraleq_jax.evaluate --workdir runs/crowd

Audealize's words as in ``--config audealize``, plus SAFE-DB's words with at least
``data.min_examples`` (5) settings (SAFE-DB is found as for ``--config safe``: ../shared or
$NEURALEQ_SHARED_DATA), in the standard ranges (SAFE's wider sliders are clipped). A word in both
crowds mixes its Audealize variations and SAFE settings in the ratio of their contributors
(neuraleq_jax.data.crowd). The crowds disagree at times (SAFE's warm vs Audealize's warm: r ≈ 0.69),
so a shared word sits between its sources; the evaluation reports fidelity per source.
"""

import dataclasses
from pathlib import Path

from neuraleq_jax.config import load_preset


def get_config():
    # the same model and training as the audealize preset; the data adds SAFE-DB's words
    base = load_preset(str(Path(__file__).with_name("audealize.py")))
    return dataclasses.replace(
        base, name="crowd", data=dataclasses.replace(base.data, dataset="crowd", min_examples=5)
    )
