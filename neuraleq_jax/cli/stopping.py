"""How a ``neuraleq`` command stops on Ctrl-C (SIGINT) and SIGTERM.

Python runs a signal handler between two bytecodes of the main thread, which may be inside a
garbage-collection callback (JAX registers one) or a ``__del__``; an exception raised there is
printed as "Exception ignored in …" and the command would run on. So the handler also records
the signal, and the long loops (streamed output, the explore store) call :meth:`check` between
chunks, which raises it again.
"""

from __future__ import annotations

import signal
import threading


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that files being written are cleaned up."""


_RAISED = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated}


class StopSignals:
    """While the block runs (in the main thread), SIGINT raises KeyboardInterrupt and SIGTERM
    raises :class:`Terminated`, and both are recorded for :meth:`check`; the previous handlers
    come back afterwards. With ``install=False``, or outside the main thread (where Python
    cannot set handlers), nothing is installed and :meth:`check` never raises."""

    def __init__(self, install: bool = True):
        self.install = install
        self.received: list[int] = []
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if self.install and threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self.handler) for sig in _RAISED}
        return self

    def __exit__(self, *exc_info) -> bool:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
        return False

    def handler(self, signum: int, _frame=None) -> None:
        self.received.append(signum)
        raise _RAISED[signum]()

    def check(self) -> None:
        """Raise the first recorded signal's exception again (the first raise may have been
        swallowed); nothing when no signal came."""
        if self.received:
            raise _RAISED[self.received[0]]()
