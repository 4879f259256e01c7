"""``python -m neuraleq_jax.train --config synthetic --workdir W``: train a model.

The entry point only; the command line is :mod:`neuraleq_jax.cli.train` (``--help`` lists every
config field) and the run itself :mod:`neuraleq_jax.training.experiment`.
"""

import sys

from neuraleq_jax.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
