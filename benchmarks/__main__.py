"""``python -m benchmarks [names...] [--quick] [--no-save]``: see :mod:`benchmarks.run`."""

import sys

from benchmarks.run import main

sys.exit(main())
