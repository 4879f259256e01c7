"""``python -m neuraleq_jax.cli``: the ``neuraleq`` command."""

from neuraleq_jax.cli import exit_with_status, main

exit_with_status(main())
