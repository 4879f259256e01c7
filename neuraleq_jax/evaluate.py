"""``python -m neuraleq_jax.evaluate --workdir W``: evaluate a trained workdir beside the lite
baseline.

The entry point only; the command line is :mod:`neuraleq_jax.cli.evaluate` and the evaluation
:mod:`neuraleq_jax.evaluation.workdirs`.
"""

import sys

from neuraleq_jax.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
