"""A time limit for C++ work that runs in this process and cannot be cancelled (the TFLite converter).

Interpreters run in worker processes and are killed at their time limit
(:mod:`edgepipe.runtimes.isolated`); the TensorFlow converter runs here, and
nothing interrupts a C++ call from Python. So :func:`give_up_after` arms a
watchdog: if the block has not finished after ``seconds``, it writes the one
line of the exit-code contract (exit 3, and the JSON document under
``--json``) to the terminal's own file descriptors — the converter's output is
being captured — and ends the process. The output folder stays whole (a
build publishes it in one step, after conversion), the lock is released by
the kernel, and the workers see their pipe close and exit.

It also keeps Ctrl-C a Ctrl-C: TensorFlow turns a KeyboardInterrupt raised in
its calibration callback into an ordinary error ("'NoneType' object is not
callable"), which would read as a refused model (exit 2). If SIGINT arrived
while the block ran, whatever the block raised leaves as KeyboardInterrupt (exit 130);
if SIGTERM did, as :class:`~edgepipe.termination.Terminated` (exit 143).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from contextlib import contextmanager

from edgepipe.errors import EXIT_INTERNAL

ENV = "EDGEPIPE_CONVERT_TIMEOUT"
DEFAULT_SECONDS = 1800.0


def limit(env: str = ENV, default: float = DEFAULT_SECONDS) -> float:
    """Seconds from ``env`` (a positive number), else ``default``."""
    try:
        value = float(os.environ.get(env, default))
    except ValueError:
        return default
    return value if value > 0 else default


@contextmanager
def give_up_after(seconds: float, what: str):
    """Run the block; past ``seconds``, say so in one line and exit 3."""
    out, err = os.dup(1), os.dup(2)  # the terminal's, before the block captures 1 and 2
    message = f"internal error: {what} did not finish within {seconds:g} s (set {ENV} to allow longer)"

    def expire() -> None:
        if "--json" in sys.argv[1:]:
            doc = {"status": "error", "exit_code": EXIT_INTERNAL, "error": message}
            os.write(out, (json.dumps(doc, indent=2) + "\n").encode())
        os.write(err, f"error: {message}\n".encode())
        os._exit(EXIT_INTERNAL)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    interrupted, previous = _watch_signals()
    try:
        yield
    except Exception:
        if interrupted:
            raise interrupted[0] from None
        raise
    finally:
        timer.cancel()
        for number, handler in previous.items():
            signal.signal(number, handler)
        os.close(out)
        os.close(err)


def _watch_signals() -> tuple[list, dict]:
    """(the exception of each SIGINT or SIGTERM that arrived, the handlers to restore by signal); the
    handlers still raise it: KeyboardInterrupt for SIGINT, Terminated for SIGTERM.

    Only the main thread may set handlers: elsewhere nothing is watched (``([], {})``).
    """
    from edgepipe.termination import Terminated

    seen: list = []
    if threading.current_thread() is not threading.main_thread():
        return seen, {}

    def on_signal(signum, frame):
        seen.append(Terminated if signum == signal.SIGTERM else KeyboardInterrupt)
        raise seen[-1]

    return seen, {number: signal.signal(number, on_signal) for number in (signal.SIGINT, signal.SIGTERM)}
