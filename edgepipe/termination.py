"""SIGTERM ends edgepipe the way Ctrl-C does: by unwinding, not by dying where it stands.

A CI job past its time limit, ``timeout``, ``docker stop`` and service managers send
SIGTERM. Its default action ends the process at once: no ``finally`` runs, so a child
it started (a fine-tuning child, an interpreter worker) is left running, the caller
sees a death by signal and nothing says what happened. Raised as an exception
instead, SIGTERM takes the path Ctrl-C takes: children are killed, the output lock
is released, the output folder stays whole (it is only ever swapped in complete), a
fit's journal keeps every finished batch for the resume, and the CLI prints one line
and exits :data:`EXIT_TERMINATED`.
"""

from __future__ import annotations

import signal
import threading

EXIT_TERMINATED = 143  # the shell's convention: 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived. A KeyboardInterrupt, so whatever stops cleanly on Ctrl-C stops cleanly on it."""


def raise_on_sigterm() -> None:
    """From now on SIGTERM raises :class:`Terminated` in the main thread (elsewhere nothing changes:
    only the main thread may set handlers)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise)


def _raise(signum, frame):
    raise Terminated
