"""Every interpreter in a child process with a time limit: a crash or a hang is a finding, not a dead edgepipe.

LiteRT (XNNPACK and the reference kernels) and TensorFlow Lite Micro are C++
libraries that can segfault, abort or spin on a model they mishandle: a
malformed flatbuffer, an undersized TFLM arena, a kernel bug. Run in the
edgepipe process, any of these kills the build with exit 139 and no report.
So each interpreter lives in a worker process (``python -m
edgepipe.runtimes.worker``) that this module talks to over a pipe:

- :class:`Worker` — one child; :meth:`Worker.call` sends a command and waits
  for the answer at most ``timeout`` seconds. A signal, an early exit or the
  time limit raises :class:`RuntimeFailure` naming the runtime, what it was
  doing and the last lines the runtime printed; the worker is then gone and the
  next call starts a fresh one.
- :class:`IsolatedRunner` — a :class:`~edgepipe.runtimes.base.Runner` whose
  interpreter is in a worker: what the harness, the cross-check, attribution
  and latency use.

Messages are pickled tuples framed by an 8-byte length; both ends are this
package, and the pipe is private to the two processes.
"""

from __future__ import annotations

import os
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgepipe.data.samples import as_float32
from edgepipe.runtimes.quant import dequantize

DEFAULT_TIMEOUT = 600.0   # seconds one call may take (evaluating many samples included)
START_TIMEOUT = 60.0      # seconds to import the runtime and load the model
MEMORY_ENV = "EDGEPIPE_WORKER_MEMORY"  # e.g. "4GiB": the address space one worker may use
_HEADER = struct.Struct("<Q")


class RuntimeFailure(Exception):
    """An interpreter crashed, hung or refused the model; carries what is known about where.

    Not an :class:`~edgepipe.errors.EdgepipeError`: the build does not stop on
    it; the stage that met it records a failed check with this message.
    """

    def __init__(self, runtime: str, kind: str, doing: str, log: str = ""):
        self.runtime, self.kind, self.doing, self.log = runtime, kind, doing, log.strip()
        msg = f"{runtime} {kind} while {doing}"
        tail = [ln.strip() for ln in self.log.splitlines() if ln.strip()][-3:]
        if tail:
            msg += f" [{' | '.join(tail)}]"
        super().__init__(msg)


class Worker:
    """One child process that hosts interpreters; commands are answered one at a time."""

    def __init__(self, runtime: str, timeout: float = DEFAULT_TIMEOUT, memory_limit: int | None = None):
        self.runtime, self.timeout = runtime, timeout
        self.memory_limit = memory_limit or default_memory_limit()
        self._proc: subprocess.Popen | None = None
        self._log = None

    def call(self, command: str, timeout: float | None = None, **kwargs):
        """Run ``command`` in the child; RuntimeFailure if it crashes, hangs or refuses."""
        if self._proc is None:
            self._start()
        try:
            self._send((command, kwargs))
            ok, value = self._receive(timeout or self.timeout, command)
        except (BrokenPipeError, EOFError):
            raise self._died(command) from None
        if not ok:
            raise RuntimeFailure(self.runtime, "refused the model", _doing(command), value)
        return value

    def close(self) -> None:
        """Stop the child (politely, then by force) and drop its log."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                if proc.poll() is None:
                    self._send_to(proc, ("quit", {}))
                    proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:  # unflushed bytes to a dead child
                    pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def __del__(self):  # a runner dropped without close() must not leave a child behind
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # ------------------------------------------------------------------ plumbing

    def _start(self) -> None:
        import edgepipe

        root = str(Path(edgepipe.__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
                   TF_CPP_MIN_LOG_LEVEL="3")
        self._log = tempfile.TemporaryFile(mode="w+b")
        limit = self.memory_limit
        self._proc = subprocess.Popen([sys.executable, "-m", "edgepipe.runtimes.worker"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._log, env=env,
                                      preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))

    def _send(self, message) -> None:
        self._send_to(self._proc, message)

    @staticmethod
    def _send_to(proc, message) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        proc.stdin.write(_HEADER.pack(len(data)) + data)
        proc.stdin.flush()

    def _receive(self, timeout: float, command: str):
        deadline = time.monotonic() + timeout
        header = self._read(_HEADER.size, deadline, command)
        return pickle.loads(self._read(_HEADER.unpack(header)[0], deadline, command))

    def _read(self, n: int, deadline: float, command: str) -> bytes:
        fd, parts, got = self._proc.stdout.fileno(), [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise self._hung(command)
            chunk = os.read(fd, min(n - got, 1 << 20))
            if not chunk:
                raise EOFError
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def _hung(self, command: str) -> RuntimeFailure:
        self._proc.kill()
        self._proc.wait()
        failure = RuntimeFailure(self.runtime, "did not answer within the time limit", _doing(command), self._tail())
        self.close()
        return failure

    def _died(self, command: str) -> RuntimeFailure:
        code = self._proc.wait()
        kind = f"crashed ({_signal_name(-code)})" if code < 0 else f"exited with status {code}"
        failure = RuntimeFailure(self.runtime, kind, _doing(command), self._tail())
        self.close()
        return failure

    def _tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()[-4000:].decode("utf-8", "replace")


def default_memory_limit() -> int:
    """The address space a worker may use: ``EDGEPIPE_WORKER_MEMORY``, else half the host's memory.

    A model whose evaluation would need more (an input widened to 8×100,000 was seen to
    take 1.5 GB and 200 s) fails its allocation in the worker — a failed check — instead
    of pushing the build host into swap or the OOM killer.
    """
    from edgepipe.units import parse_size

    given = os.environ.get(MEMORY_ENV)
    if given:
        return int(parse_size(given))
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def _doing(command: str) -> str:
    return {"open": "loading the model", "raw": "running the model", "latency": "timing the model",
            "intermediates": "reading intermediate tensors"}.get(command, command)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class IsolatedRunner:
    """A runner (``litert-xnnpack``, ``litert-reference``, ``tflm``) whose interpreter is in a worker.

    ``arena``: the TFLM tensor arena in bytes (measured by the TFLM backend);
    without it the worker measures it first. Construction loads the model, so
    a runtime that refuses or crashes on it raises :class:`RuntimeFailure` here.
    """

    def __init__(self, name: str, model_bytes: bytes, threads: int = 1, arena: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT, rounding: str | None = None, memory_limit: int | None = None):
        self.name, self.model_bytes = name, bytes(model_bytes)
        self._worker = Worker(name, timeout, memory_limit)
        try:
            info = self._worker.call("open", START_TIMEOUT + len(model_bytes) / 1e7, name=name,
                                     model=self.model_bytes, threads=threads, arena=arena, rounding=rounding)
        except RuntimeFailure:
            self._worker.close()  # a refusal leaves the child alive: no runner, no child
            raise
        self.batched, self.batch_note = info["batched"], info["batch_note"]
        self.arena_bytes = info.get("arena")
        self._out_q = info["output_quantization"]

    def raw(self, x: np.ndarray, on_batch=None) -> list[np.ndarray]:
        """Integer outputs (one array per model output, samples first) for float samples ``x``."""
        got = self._worker.call("raw", x=as_float32(x))
        self.batched, self.batch_note = got["batched"], got["batch_note"]
        if on_batch:
            on_batch(len(x))
        return got["outputs"]

    def outputs(self, x: np.ndarray, on_batch=None) -> list[np.ndarray]:
        return [dequantize(r, *q) for r, q in zip(self.raw(x, on_batch), self._out_q)]

    def predict(self, x: np.ndarray, on_batch=None) -> np.ndarray:
        return self.outputs(x, on_batch)[0]

    def latency(self, sample: np.ndarray, repeats: int = 50, budget_s: float = 3.0) -> dict:
        """Host wall time of single-sample invokes (see :meth:`LiteRTRunner.latency`)."""
        return self._worker.call("latency", sample=as_float32(sample[:1]),
                                 repeats=repeats, budget_s=budget_s)

    def close(self) -> None:
        self._worker.close()


def intermediates(model_bytes: bytes, x: np.ndarray, indices: list[int],
                  timeout: float = DEFAULT_TIMEOUT) -> dict[int, np.ndarray]:
    """Tensors ``indices`` of a reference-kernel run on float samples ``x``, computed in a worker.

    See :func:`edgepipe.runtimes.litert.intermediates_in_process`.
    """
    worker = Worker("litert-reference", timeout)
    try:
        return worker.call("intermediates", model=bytes(model_bytes), x=as_float32(x),
                           indices=list(indices))
    finally:
        worker.close()
