"""Worker processes on this machine, spawned once and reused for every call of :meth:`LocalExecutor.map`.

Spawned, not forked: TensorFlow does not survive a fork. Each worker runs one
item at a time, so when one dies (a signal, a native crash) the item it was
running is known and named in :class:`~edgepipe.scale.errors.WorkerLost`; a
fresh worker takes its place for the items still waiting. A worker dies with
the process that spawned it (Linux's parent-death signal), so a fit killed
mid-search leaves no worker building a candidate nobody will read; that signal
unwinds the worker (:mod:`edgepipe.termination`), so the children its build
started (fine-tuning, interpreters) are killed with it.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
from collections import deque
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterable

from edgepipe.scale.calls import (WORKER_ENV, describe_item, make_call, pack_error, run_call, signal_name,
                                  unpack_error)
from edgepipe.scale.errors import WorkerLost
from edgepipe.termination import raise_on_sigterm

OnDone = Callable[[int, Any], None]
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with(parent: int) -> None:
    """Linux: be sent SIGTERM when ``parent`` dies (a killed fit or build), rather than finish a build
    nobody will read and then fail to send it; a parent already gone ends this worker at once."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the broken pipe below still ends the worker quietly
        pass
    if os.getppid() != parent:
        os._exit(0)


def _worker_main(conn: Connection, parent: int) -> None:
    """A worker's life: stdout to stderr (the parent's stdout may carry one JSON document), then calls until told
    or until the parent is gone."""
    raise_on_sigterm()
    _die_with(parent)
    os.dup2(2, 1)
    for key, value in WORKER_ENV.items():
        os.environ.setdefault(key, value)
    try:
        while True:
            try:
                data = conn.recv_bytes()
            except EOFError:
                return
            if not data:
                return
            try:
                call = pickle.loads(data)
            except Exception as exc:  # noqa: BLE001 - a call this worker cannot even load goes back as its error
                conn.send(("error", pack_error(exc)))
                continue
            conn.send(run_call(call))
    except (KeyboardInterrupt, BrokenPipeError, ConnectionResetError):  # Ctrl-C, SIGTERM, or nobody left to read it
        return


class _Worker:
    def __init__(self):
        ctx = get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, os.getpid()), name="edgepipe-worker")
        self.proc.start()
        child.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask it to end; terminate, then kill, what does not."""
        try:
            self.conn.send_bytes(b"")
        except OSError:
            pass
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


class LocalExecutor:
    """``map`` over up to ``workers`` spawned processes, results in input order."""

    kind = "local"

    def __init__(self, workers: int = 2):
        self.workers = max(1, int(workers))
        self._pool: list[_Worker] = []

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        pool, self._pool = self._pool, []
        for worker in pool:
            worker.stop()

    def describe(self) -> dict:
        return {"kind": self.kind, "host": socket.gethostname(), "workers": self.workers}

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *, return_exceptions: bool = False,
            on_done: OnDone | None = None) -> list:
        """``[fn(item) for item in items]`` in worker processes.

        An exception raised by ``fn`` is raised here with its class (after the
        items already running end; no new item starts), or with
        ``return_exceptions`` takes the item's place in the list. ``on_done(index,
        result_or_exception)`` is called here as each item ends, in any order.
        """
        items = list(items)
        results: list[Any] = [None] * len(items)
        errors: dict[int, BaseException] = {}
        waiting = deque(range(len(items)))
        busy: dict[_Worker, int] = {}
        try:
            while waiting or busy:
                while waiting and (return_exceptions or not errors):
                    worker = self._idle(busy)
                    if worker is None:
                        break
                    index = waiting.popleft()
                    worker.conn.send(make_call(fn, items[index]))
                    busy[worker] = index
                if not busy:
                    break
                ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy]))
                for worker, index in list(busy.items()):
                    if worker.conn not in ready and worker.proc.sentinel not in ready:
                        continue
                    value = self._collect(worker, index, items[index])
                    del busy[worker]
                    if isinstance(value, BaseException):
                        errors[index] = value
                    results[index] = value
                    if on_done is not None:
                        on_done(index, value)
        except BaseException:
            for worker in busy:  # their results would be read by the next call: end them
                self._pool.remove(worker)
                worker.stop(timeout=1.0)
            raise
        if errors and not return_exceptions:
            raise errors[min(errors)]
        return results

    def _idle(self, busy: dict) -> _Worker | None:
        for worker in self._pool:
            if worker not in busy:
                return worker
        if len(self._pool) < self.workers:
            self._pool.append(_Worker())
            return self._pool[-1]
        return None

    def _collect(self, worker: _Worker, index: int, item: Any) -> Any:
        """The item's result or exception; a dead worker leaves the pool and becomes WorkerLost."""
        try:
            if worker.conn.poll():
                status, value = worker.conn.recv()
                return value if status == "ok" else unpack_error(value)
        except (EOFError, OSError):
            pass
        worker.proc.join()
        self._pool.remove(worker)
        worker.conn.close()
        return WorkerLost(describe_item(index, item), signal_name(worker.proc.exitcode))
