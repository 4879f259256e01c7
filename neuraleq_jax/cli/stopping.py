"""How a ``neuraleq`` command stops on Ctrl-C (SIGINT) and SIGTERM.

Python runs a signal handler between two bytecodes of the main thread, which may be inside a
garbage-collection callback (JAX registers one) or a ``__del__``; an exception raised there is
printed as "Exception ignored in …" with its traceback, and the command would run on. So the
handler records the signal, raises only where the exception is not swallowed (not inside a gc
callback or a finaliser), and the long loops (streamed output, the explore store) call
:meth:`check` between chunks, which raises it.
"""

from __future__ import annotations

import gc
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

    def handler(self, signum: int, frame=None) -> None:
        self.received.append(signum)
        if not _swallowed_in(frame):  # there, the next check() raises it instead
            raise _RAISED[signum]()

    def check(self) -> None:
        """Raise the first recorded signal's exception again (the first raise may have been
        swallowed); nothing when no signal came."""
        if self.received:
            raise _RAISED[self.received[0]]()


def _swallowed_in(frame) -> bool:
    """Whether Python would print and drop an exception raised in ``frame`` (the frame a signal
    interrupted): it runs inside a garbage-collection callback or a ``__del__``."""
    callbacks = {getattr(callback, "__code__", None) for callback in gc.callbacks}
    while frame is not None:
        if frame.f_code.co_name == "__del__" or frame.f_code in callbacks:
            return True
        frame = frame.f_back
    return False
