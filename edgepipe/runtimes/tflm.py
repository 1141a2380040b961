"""TensorFlow Lite Micro on the host: op support, the arena a model needs, runs on TFLM's kernels.

TFLM's Python runtime (``tflite_micro``) runs the reference kernels a firmware build
runs. They are not bit-exact with LiteRT's ``BUILTIN_REF`` everywhere (FULLY_CONNECTED
can differ by 1 LSB), so a TFLM target is measured on TFLM itself.

The arena figure is the smallest arena, to 16 bytes, in which the model loads
(AllocateTensors) and invokes twice: found by bisection, then confirmed in a fresh
process (runs at N bytes, fails at N - 16). TFLM's own figure, printed by
``print_allocations()`` to file descriptor 2 (read with :func:`edgepipe.fdcapture.captured`),
counts what stays allocated, not what AllocateTensors needs only while it prepares the
model; it is often below what the model needs, so it only seeds the search.

This TFLM build segfaults instead of failing at some undersized arenas, and can abort
on a model it cannot handle. So anything that hands a model to TFLM for the first time
runs in a child process (``python -m edgepipe.runtimes.tflm``). During the arena search
the child reports every probe over a pipe before and after running it, so a probe that
crashes or hangs costs only that child and counts as "too small"; a fresh child goes on
from the bounds already proven. A model "cannot run" (:class:`TflmError`) only when it
fails in a generous arena.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from edgepipe.checks import Check, budget_check
from edgepipe.errors import EdgepipeError
from edgepipe.fdcapture import captured
from edgepipe.runtimes.quant import dequantize, quantize
from edgepipe.runtimes.tflm_ops import CUSTOM_ADD_METHODS, STATIC_BUILTINS, WEIGHTED_OPS
from edgepipe.tflite.model import TfliteModel, parse_tflite

if TYPE_CHECKING:  # probes run ``python -m edgepipe.runtimes.tflm``: kept free of the config schema
    from edgepipe.config.schema import TargetProfile

MIN_PROBE_ARENA = 4 * 1024 * 1024
ALIGN = 16
PROBE_TIMEOUT = 60.0  # seconds one probe (load + two invokes) may take before it counts as a hang
_TOTAL_RE = re.compile(r"Arena allocation total (\d+) bytes")
_HEAD_RE = re.compile(r"Arena allocation head (\d+) bytes")
_TAIL_RE = re.compile(r"Arena allocation tail (\d+) bytes")
_MISSING_RE = re.compile(r"missing: (\d+)")
_FLOAT = ("float32", "float16", "float64")


class TflmError(EdgepipeError):
    """TFLite Micro refused or crashed on a model; carries TFLM's own log lines."""

    def __init__(self, where: str, problem: str, log: str = ""):
        self.where, self.problem, self.log = where, problem, log.strip()
        msg = f"{where}: TFLite Micro cannot run this model: {problem}"
        if self.log:
            msg += " [TFLM: " + " | ".join(_log_lines(self.log)[-4:]) + "]"
        super().__init__(msg)


@dataclass(frozen=True)
class ArenaMeasurement:
    """The tensor arena a model needs in TFLM, measured on the host.

    ``bytes``: the smallest arena (to 16 bytes) the model loads and invokes twice in.
    ``method``: ``tflm:bisection``. ``verified``: a fresh process confirmed it runs
    with ``bytes`` and fails (cleanly or by crashing) with ``bytes - 16``.
    ``probe_arena``: the generous arena the search started from. ``printed_bytes``,
    ``head_bytes``, ``tail_bytes``: what TFLM's ``print_allocations`` said (total, planned
    tensors, persistent structures) -- often less than ``bytes``, kept as a hint.
    ``probes``: TFLM loads tried; ``crashed_probes`` / ``hung_probes``: those that
    killed their process or outlived the time limit (each counted as "too small").
    """

    bytes: int
    method: str
    verified: bool
    probe_arena: int
    printed_bytes: int | None = None
    head_bytes: int | None = None
    tail_bytes: int | None = None
    probes: int = 0
    crashed_probes: int = 0
    hung_probes: int = 0
    source: str = "measured:host"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class OpSupport:
    """Builtin op names TFLM has kernels for; ``source`` says where the list came from."""

    builtins: frozenset[str]
    customs: frozenset[str]
    source: str

    def supports(self, op_name: str) -> bool:
        if op_name.startswith("CUSTOM:"):
            return op_name.removeprefix("CUSTOM:") in self.customs
        return op_name in self.builtins


# --------------------------------------------------------------------------- stderr capture

def _log_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


# --------------------------------------------------------------------------- in-process core

def _runtime():
    from tflite_micro.python.tflite_micro import runtime

    return runtime


def _new_interpreter(model_bytes: bytes, arena: int):
    """An interpreter with its tensors allocated, or TflmError with TFLM's log."""
    with captured((2,)) as log:
        try:
            return _runtime().Interpreter.from_bytes(model_bytes, arena_size=int(arena))
        except (RuntimeError, ValueError) as exc:
            err = exc
    raise TflmError("model", str(err), log.text)


def _invoke(it) -> None:
    with captured((2,)) as log:
        try:
            it.invoke()
            return
        except RuntimeError as exc:
            err = exc
    raise TflmError("model", f"invoke failed ({err})", log.text)


def _invoke_zeros(it, model: TfliteModel) -> None:
    for i, t in enumerate(model.input_tensors):
        it.set_input(np.zeros([max(d, 1) for d in t.shape], np.dtype(t.dtype)), i)
    _invoke(it)


def _load_and_invoke(model_bytes: bytes, model: TfliteModel, arena: int):
    """The interpreter after two invokes on zeros, or TflmError.

    Twice because a streaming model allocates and initialises its variables in the
    first invoke (CALL_ONCE) and reads them back in the second.
    """
    it = _new_interpreter(model_bytes, arena)
    _invoke_zeros(it, model)
    _invoke_zeros(it, model)
    return it


def _align(n: int) -> int:
    return -(-int(n) // ALIGN) * ALIGN


# --------------------------------------------------------------------------- arena search (worker side)
#
# A worker reports every probe as two events, {"start": n} before TFLM sees the
# arena and {"end": n, "runs": ...} after, so whoever reads the events knows the
# proven bounds and the size that was in progress if the worker dies.

Emit = Callable[[dict], object]
Run = Callable[[str, dict], Iterator[dict]]  # run(command, params) -> one worker's events


def _prober(model_bytes: bytes, model: TfliteModel, emit: Emit):
    """probe(n) -> (interpreter or None, TflmError or None), reporting start and end."""
    def probe(arena: int):
        emit({"start": arena})
        try:
            it = _load_and_invoke(model_bytes, model, arena)
        except TflmError as exc:
            emit({"end": arena, "runs": False, "problem": exc.problem, "log": exc.log[-4000:]})
            return None, exc
        emit({"end": arena, "runs": True})
        return it, None
    return probe


def _generous(probe, model_bytes: bytes, emit: Emit) -> tuple[int, int, int | None] | None:
    """(lo, hi, printed total) from a generous arena that runs, grown by what TFLM says is missing.

    Emits TFLM's printed figures, or TFLM's reason (``error``) and None when the model
    fails for any reason other than size: then it cannot run at all.
    """
    lo, arena = 0, _align(max(10 * len(model_bytes), MIN_PROBE_ARENA))
    for _ in range(4):
        it, err = probe(arena)
        if it is not None:
            printed = _printed(it)
            emit({"printed": printed})
            return lo, arena, printed.get("total")
        missing = _MISSING_RE.search(err.log)
        if not missing:
            emit({"error": err.problem, "log": err.log[-4000:]})
            return None
        lo, arena = arena, _align(2 * (arena + int(missing.group(1))))
    emit({"error": f"does not fit even a {lo} byte arena"})
    return None


def _printed(it) -> dict:
    """TFLM's own allocation figures (total, head, tail), as printed to file descriptor 2."""
    with captured((2,)) as log:
        it.print_allocations()
    found = {key: rx.search(log.text) for key, rx in (("total", _TOTAL_RE), ("head", _HEAD_RE), ("tail", _TAIL_RE))}
    return {key: int(m.group(1)) for key, m in found.items() if m}


def _gallop(runs: Callable[[int], bool], lo: int, hi: int, start: int) -> tuple[int, int]:
    """Bounds around the minimum by exponential steps out from ``start`` (TFLM's printed total).

    Downwards the steps start at 16 bytes (the printed total is often exact); upwards
    at an eighth of it (it is often 10-80 % short).
    """
    if runs(start):
        hi, step = start, ALIGN
        while hi - step > lo:
            if not runs(hi - step):
                return hi - step, hi
            hi, step = hi - step, 2 * step
        return lo, hi
    lo, step = start, _align(start // 8)
    while lo + step < hi:
        if runs(lo + step):
            return lo, lo + step
        lo, step = lo + step, 2 * step
    return lo, hi


def _narrow(runs: Callable[[int], bool], lo: int, hi: int, hint: int | None) -> tuple[int, int]:
    """Shrink (lo, hi] (fails at lo, runs at hi) to 16 bytes: gallop from the hint, then bisect."""
    if hint is not None and lo < _align(hint) < hi:
        lo, hi = _gallop(runs, lo, hi, _align(hint))
    while hi - lo > ALIGN:
        mid = (lo + hi) // 2 // ALIGN * ALIGN
        if runs(mid):
            hi = mid
        else:
            lo = mid
    return lo, hi


def _search_worker(model_bytes: bytes, params: dict, emit: Emit) -> None:
    """Find a generous arena first if no arena is known to run yet, then narrow the bounds."""
    probe = _prober(model_bytes, parse_tflite(model_bytes), emit)
    lo, hi, hint = params["lo"], params["hi"], params["hint"]
    if hi is None:
        found = _generous(probe, model_bytes, emit)
        if found is None:
            return
        lo, hi, hint = found
    _narrow(lambda n: probe(n)[0] is not None, lo, hi, hint)


def _confirm_worker(model_bytes: bytes, params: dict, emit: Emit) -> None:
    """Probe each size once, in order (the size expected to run goes first)."""
    probe = _prober(model_bytes, parse_tflite(model_bytes), emit)
    for arena in params["sizes"]:
        probe(arena)


_PROBE_WORKERS = {"search": _search_worker, "confirm": _confirm_worker}


# --------------------------------------------------------------------------- arena search (driver side)

@dataclass
class _Bounds:
    """What the probes so far proved: the model fails at ``lo`` and runs at ``hi`` (None: nothing ran)."""

    lo: int = 0
    hi: int | None = None
    generous: int | None = None
    printed: dict = field(default_factory=dict)
    probes: int = 0
    crashed: int = 0
    hung: int = 0

    @property
    def done(self) -> bool:
        return self.hi is not None and self.hi - self.lo <= ALIGN

    def settle(self, arena: int, runs: bool) -> None:
        if runs and self.hi is None:
            self.generous = self.hi = arena
        elif runs:
            self.hi = min(self.hi, arena)
        elif self.hi is None or arena < self.hi:
            self.lo = max(self.lo, arena)

    def measurement(self, verified: bool) -> ArenaMeasurement:
        p = self.printed
        return ArenaMeasurement(self.hi, "tflm:bisection", verified, self.generous, p.get("total"),
                                p.get("head"), p.get("tail"), self.probes, self.crashed, self.hung)


def _measure(run: Run, where: str, b: _Bounds | None = None) -> ArenaMeasurement:
    """Search in as many workers as crashes take, then confirm at N and N - 16 in a fresh one.

    ``b``: bounds to start from (a test starts a plain bisection, without TFLM's hint).
    """
    b = b or _Bounds()
    while not b.done:
        probes = b.probes
        _follow(b, run("search", {"lo": b.lo, "hi": b.hi, "hint": b.printed.get("total")}), where)
        if b.probes == probes:
            raise TflmError(where, "the TFLM worker stopped without probing an arena")
    below = b.hi - ALIGN
    outcome = _follow(b, run("confirm", {"sizes": [b.hi, below]}), where, settle=False)
    return b.measurement(verified=outcome.get(b.hi) is True and outcome.get(below) is False)


def _follow(b: _Bounds, events: Iterator[dict], where: str, settle: bool = True) -> dict[int, bool]:
    """Replay one worker's events into ``b``; return {arena: runs} for the probes it made.

    The probe a worker died or hung in counts as "too small", unless no arena has run
    yet: then the generous arena itself failed and the model cannot run.
    """
    outcome, pending = {}, None
    with closing(events):
        for ev in events:
            if "start" in ev:
                pending, b.probes = ev["start"], b.probes + 1
            elif "end" in ev:
                pending, outcome[ev["end"]] = None, ev["runs"]
                if settle:
                    b.settle(ev["end"], ev["runs"])
            elif "printed" in ev:
                b.printed = ev["printed"]
            elif "error" in ev:
                raise TflmError(where, ev["error"], ev.get("log", ""))
            elif pending is not None:
                _died_in_probe(b, ev, pending, where)
                outcome[pending] = False
                if settle:
                    b.settle(pending, False)
            elif ev["exit"] != 0:
                raise TflmError(where, f"the TFLM worker {_how(ev)} before its first probe", ev.get("stderr", ""))
    return outcome


def _died_in_probe(b: _Bounds, ev: dict, arena: int, where: str) -> None:
    """Count a crashed or hung probe, or raise when it was the generous arena."""
    if b.hi is None:
        raise TflmError(where, f"the TFLM runtime {_how(ev)} at a {arena} byte arena", ev.get("stderr", ""))
    if ev["exit"] is None:
        b.hung += 1
    else:
        b.crashed += 1


def _how(ev: dict) -> str:
    code = ev["exit"]
    if code is None:
        return f"hung (no answer within {PROBE_TIMEOUT:g} s)"
    if code < 0:
        try:
            return f"crashed ({signal.Signals(-code).name})"
        except ValueError:
            return f"crashed (signal {-code})"
    return f"failed (exit {code})"


def _in_process(model_bytes: bytes) -> Run:
    """The workers run in this process: no crash protection (``measure_arena(isolate=False)``)."""
    def run(command: str, params: dict) -> Iterator[dict]:
        events: list[dict] = []
        _PROBE_WORKERS[command](model_bytes, params, events.append)
        yield from events
        yield {"exit": 0}
    return run


@contextmanager
def _child_processes(model_bytes: bytes, timeout: float, where: str) -> Iterator[Run]:
    """run(command, params) -> events of a worker in a fresh child; all of them within ``timeout`` s."""
    with tempfile.TemporaryDirectory(prefix="edgepipe-tflm-") as d:
        work = Path(d)
        (work / "model.tflite").write_bytes(model_bytes)
        yield partial(_events, work, deadline=time.monotonic() + timeout, timeout=timeout, where=where)


def _events(work: Path, command: str, params: dict, *, deadline: float, timeout: float,
            where: str) -> Iterator[dict]:
    """Run a worker in a child process; yield its events as they arrive, then ``{"exit": code}``.

    ``exit`` is the child's return code (negative: killed by that signal), or None when
    it went PROBE_TIMEOUT seconds without an event (it is then killed): a hang.
    """
    read, write = os.pipe()
    (work / "params.json").write_text(json.dumps({**params, "fd": write}))
    with open(work / "stderr.txt", "w+b") as err:
        proc = subprocess.Popen([sys.executable, "-m", "edgepipe.runtimes.tflm", command, str(work)],
                                stdin=subprocess.DEVNULL, stdout=err, stderr=err, pass_fds=(write,))
        os.close(write)
        try:
            finished = yield from _read_events(read, deadline, timeout, where)
            code = _exit_code(proc) if finished else None
            err.seek(0)
            yield {"exit": code, "stderr": err.read()[-8000:].decode("utf-8", "replace")}
        finally:
            os.close(read)
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _exit_code(proc: subprocess.Popen) -> int | None:
    """The return code of a child that closed its end of the pipe; None if it lingers."""
    try:
        return proc.wait(timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None


def _read_events(fd: int, deadline: float, timeout: float, where: str) -> Iterator[dict]:
    """JSON lines from ``fd`` until EOF (returns True) or PROBE_TIMEOUT s of silence (False)."""
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TflmError(where, f"measuring the arena took longer than {timeout:g} s")
        if not select.select([fd], [], [], min(PROBE_TIMEOUT, left))[0]:
            if deadline - time.monotonic() <= 0:
                continue
            return False
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return True
        *lines, buf = (buf + chunk).split(b"\n")
        for line in lines:
            yield json.loads(line)


# --------------------------------------------------------------------------- op support probe

def _probe_supported_ops() -> dict:
    """Ask the runtime's own resolver (PythonOpsResolver) which builtin codes it registers.

    Calls the exported C++ constructor and ``FindOp`` of the shared library via ctypes;
    run only in the child process, since a changed ABI could crash.
    """
    import ctypes

    from ai_edge_litert import schema_py_generated as schema
    from tflite_micro.python.tflite_micro import _runtime

    lib = ctypes.CDLL(_runtime.__file__)
    ctor = lib._ZN6tflite17PythonOpsResolverC1Ev
    ctor.argtypes, ctor.restype = [ctypes.c_void_p], None
    find = lib._ZNK6tflite5micro22MicroMutableOpResolverILj200EE6FindOpENS_15BuiltinOperatorE
    find.argtypes, find.restype = [ctypes.c_void_p, ctypes.c_int], ctypes.c_void_p
    find_custom = lib._ZNK6tflite5micro22MicroMutableOpResolverILj200EE6FindOpEPKc
    find_custom.argtypes, find_custom.restype = [ctypes.c_void_p, ctypes.c_char_p], ctypes.c_void_p
    buf = ctypes.create_string_buffer(1 << 20)  # far larger than MicroMutableOpResolver<200>
    ctor(ctypes.addressof(buf))
    codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    builtins = sorted(name for code, name in codes.items()
                      if name != "CUSTOM" and find(ctypes.addressof(buf), code))
    customs = sorted(c for c in CUSTOM_ADD_METHODS if find_custom(ctypes.addressof(buf), c.encode()))
    return {"builtins": builtins, "customs": customs}


# --------------------------------------------------------------------------- child process

def _isolated(command: str, model_bytes: bytes | None = None, timeout: float = 300.0,
              arrays: dict[str, np.ndarray] | None = None, where: str = "model", **params) -> dict:
    """Run ``command`` in ``python -m edgepipe.runtimes.tflm``; a crash becomes TflmError."""
    with tempfile.TemporaryDirectory(prefix="edgepipe-tflm-") as d:
        work = Path(d)
        if model_bytes is not None:
            (work / "model.tflite").write_bytes(model_bytes)
        if arrays:
            np.savez(work / "in.npz", **arrays)
        (work / "params.json").write_text(json.dumps(params))
        try:
            proc = subprocess.run([sys.executable, "-m", "edgepipe.runtimes.tflm", command, str(work)],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TflmError(where, f"TFLM did not finish {command!r} within {timeout:.0f} s") from None
        result = work / "result.json"
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            raise TflmError(where, f"the TFLM runtime crashed ({name}) during {command!r}", proc.stderr)
        if not result.is_file():
            raise TflmError(where, f"the TFLM worker failed (exit {proc.returncode})", proc.stderr)
        doc = json.loads(result.read_text())
        if "error" in doc:
            raise TflmError(where, doc["error"], doc.get("log", ""))
        if (work / "out.npz").is_file():
            with np.load(work / "out.npz") as z:
                doc["arrays"] = [z[k] for k in sorted(z.files, key=lambda k: int(k[4:]))]
        return doc


def _worker(command: str, work: Path) -> int:
    params = json.loads((work / "params.json").read_text())
    model_path = work / "model.tflite"
    if command in _PROBE_WORKERS:
        return _probe_worker(command, model_path.read_bytes(), params)
    try:
        if command == "ops":
            doc = _probe_supported_ops()
        elif command == "run":
            with np.load(work / "in.npz") as z:
                inputs = [z[k] for k in sorted(z.files, key=lambda k: int(k[3:]))]
            runner = TflmRunner(model_path.read_bytes(), arena_size=params["arena"], _checked=True)
            outs = runner.run(inputs if len(inputs) > 1 else inputs[0])
            np.savez(work / "out.npz", **{f"out_{i}": o for i, o in enumerate(outs)})
            doc = {"outputs": len(outs)}
        else:
            doc = {"error": f"unknown worker command {command!r}"}
    except TflmError as exc:
        doc = {"error": exc.problem, "log": exc.log}
    except EdgepipeError as exc:
        doc = {"error": str(exc)}
    (work / "result.json").write_text(json.dumps(doc))
    return 0


def _probe_worker(command: str, model_bytes: bytes, params: dict) -> int:
    """Run an arena-search worker, writing each event as a JSON line to the parent's pipe."""
    fd = params["fd"]

    def emit(event: dict) -> None:
        data = (json.dumps(event) + "\n").encode()
        while data:
            data = data[os.write(fd, data):]

    _PROBE_WORKERS[command](model_bytes, params, emit)
    return 0


# --------------------------------------------------------------------------- public API

@lru_cache(maxsize=1)
def supported_ops() -> OpSupport:
    """Ops the installed TFLM runtime has kernels for (probed once per process).

    Falls back to the documented table in :mod:`edgepipe.runtimes.tflm_ops` when the
    runtime's resolver cannot be introspected (other build, changed ABI).
    """
    try:
        doc = _isolated("ops", timeout=60)
        return OpSupport(frozenset(doc["builtins"]), frozenset(doc["customs"]),
                         "tflite_micro runtime (PythonOpsResolver::FindOp)")
    except (TflmError, KeyError, OSError):
        customs = frozenset(c for c in CUSTOM_ADD_METHODS if c != "ethos-u")
        return OpSupport(STATIC_BUILTINS, customs, "edgepipe/runtimes/tflm_ops.py (static table)")


def measure_arena(model_bytes: bytes, *, isolate: bool = True, timeout: float = 300.0,
                  where: str = "model") -> ArenaMeasurement:
    """The smallest tensor arena the model loads and invokes in (bytes), confirmed.

    Raises TflmError (an EdgepipeError) with TFLM's reason when the model cannot run
    even in a generous arena, or when the search takes longer than ``timeout`` seconds.
    With ``isolate`` (default) every probe runs in a child process, so a TFLM crash or
    hang at an undersized arena only means "too small"; without it a crash takes the
    caller down.
    """
    sha = parse_tflite(model_bytes, where).sha256  # a corrupt file is an InputError before TFLM sees it
    if not isolate:
        return _measure(_in_process(model_bytes), where)
    if sha not in _MEASURED:  # one build measures each model once (check stage, runners, firmware)
        with _child_processes(model_bytes, timeout, where) as run:
            _MEASURED[sha] = _measure(run, where)
        while len(_MEASURED) > 16:
            _MEASURED.pop(next(iter(_MEASURED)))
    return _MEASURED[sha]


_MEASURED: dict[str, ArenaMeasurement] = {}  # sha256 -> the confirmed arena, for this process


def arena_with_margin(arena_bytes: int, profile: TargetProfile) -> int:
    """Measured arena + ``tflm.arena_margin`` + ``arena_margin_ratio`` x arena, 16-byte aligned."""
    raw = arena_bytes + profile.tflm.arena_margin + profile.tflm.arena_margin_ratio * arena_bytes
    return -(-int(np.ceil(raw)) // ALIGN) * ALIGN


class TflmRunner:
    """One model in a TFLM interpreter in this process.

    Unless ``arena_size`` is given, the constructor first measures the arena in a
    child process, which also proves the model loads and invokes without crashing.
    ``run`` takes raw (already quantized) inputs; ``predict`` takes float inputs.
    """

    def __init__(self, model_bytes: bytes, arena_size: int | None = None, *, _checked: bool = False):
        self.model_bytes = bytes(model_bytes)
        self.model = parse_tflite(self.model_bytes)
        if arena_size is None:
            self.arena = measure_arena(self.model_bytes)
            arena_size = self.arena.bytes + 1024
        elif not _checked:
            measure_arena(self.model_bytes)  # crash-proof first load
        self.arena_size = int(arena_size)
        self._it = _new_interpreter(self.model_bytes, self.arena_size)

    def run(self, x_batch: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
        """Invoke once per sample; returns one array per model output, stacked over samples.

        ``x_batch``: an array whose first axis is the sample (one-input models), or a
        list with one such array per model input. Values must already be in the input
        tensor's dtype (see :meth:`predict` for float inputs).
        """
        inputs = [np.asarray(x_batch)] if isinstance(x_batch, np.ndarray) else [np.asarray(x) for x in x_batch]
        specs = self.model.input_tensors
        if len(inputs) != len(specs):
            raise TflmError("inputs", f"model has {len(specs)} input(s), got {len(inputs)}")
        outs: list[list[np.ndarray]] = [[] for _ in self.model.outputs]
        for s in range(len(inputs[0])):
            for i, (x, t) in enumerate(zip(inputs, specs)):
                sample = x[s].reshape([max(d, 1) for d in t.shape]).astype(np.dtype(t.dtype), copy=False)
                self._it.set_input(sample, i)
            _invoke(self._it)
            for o in range(len(outs)):
                outs[o].append(np.array(self._it.get_output(o)))
        return [np.concatenate(o) if o else np.zeros((0,)) for o in outs]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Float samples in, first output dequantized to float32 out."""
        t = self.model.input_tensors[0]
        q = quantize(x, t.dtype, t.scale[0] if t.scale else 1.0, t.zero_point[0] if t.zero_point else 0)
        raw = self.run(q)[0]
        o = self.model.output_tensors[0]
        return dequantize(raw, o.scale[0] if o.scale else 1.0, o.zero_point[0] if o.zero_point else 0)


def run_isolated(model_bytes: bytes, x_batch: np.ndarray | Sequence[np.ndarray],
                 arena_size: int | None = None, timeout: float = 600.0) -> list[np.ndarray]:
    """:meth:`TflmRunner.run` in a child process: a crash on real data is an error, not an abort."""
    if arena_size is None:
        arena_size = measure_arena(model_bytes, timeout=timeout).bytes + 1024
    xs = [x_batch] if isinstance(x_batch, np.ndarray) else list(x_batch)
    doc = _isolated("run", model_bytes, timeout=timeout, arena=int(arena_size),
                    arrays={f"in_{i}": np.asarray(x) for i, x in enumerate(xs)})
    return doc["arrays"]


# --------------------------------------------------------------------------- checks

def compat_checks(model: TfliteModel, ops: OpSupport | None = None) -> tuple[Check, ...]:
    """Can TFLM run this model at all? Kernels, hybrid weights, sparsity, float16 weights.

    Each check names the ops to blame; a model failing any of them is not handed to TFLM.
    """
    ops = ops or supported_ops()
    missing = sorted({op.op for op in model.all_operators if not ops.supports(op.op)})
    blamed = [op.label for op in model.all_operators if op.op in missing]
    kernel = (Check("tflm_ops", "pass", 0, 0, "ops", f"all {len(model.op_counts)} op types have TFLM kernels",
                    "static:flatbuffer") if not missing else
              Check("tflm_ops", "fail", len(blamed), 0, "ops",
                    f"TFLite Micro has no kernel for {', '.join(missing)} (used by {_shorten(blamed)}); "
                    f"replace these layers or pick a runtime that has them", "static:flatbuffer"))
    return (kernel, _hybrid_check(model), _sparse_check(model), _float16_check(model))


def _hybrid_check(model: TfliteModel) -> Check:
    bad = []
    for op in model.all_operators:
        if op.op not in WEIGHTED_OPS:
            continue
        tensors = model.subgraphs[op.subgraph].tensors
        ins = [tensors[i] for i in op.inputs if i >= 0]
        act_float = any(not t.is_constant and t.dtype in _FLOAT for t in ins)
        int_weights = any(t.is_constant and t.dtype in ("int8", "int4", "uint8") for t in ins)
        if act_float and int_weights:
            bad.append(op.label)
    if not bad:
        return Check("tflm_hybrid", "pass", 0, 0, "ops", "no hybrid (float-activation, int8-weight) ops",
                     "static:flatbuffer")
    return Check("tflm_hybrid", "fail", len(bad), 0, "ops",
                 f"hybrid (dynamic-range) ops that TFLM rejects: {_shorten(bad)}; "
                 "convert with full-integer quantization (representative dataset, TFLITE_BUILTINS_INT8)",
                 "static:flatbuffer")


def _sparse_check(model: TfliteModel) -> Check:
    densify = [op.label for op in model.all_operators if op.op == "DENSIFY"]
    if not densify and not model.has_sparsity:
        return Check("tflm_sparse", "pass", 0, 0, "ops", "no sparse tensors", "static:flatbuffer")
    return Check("tflm_sparse", "fail", max(len(densify), 1), 0, "ops",
                 f"sparse tensors / {_shorten(densify) or 'sparsity metadata'}: TFLM has no DENSIFY kernel; "
                 "convert without Optimize.EXPERIMENTAL_SPARSITY", "static:flatbuffer")


def _float16_check(model: TfliteModel) -> Check:
    bad = []
    for sg in model.subgraphs:
        users = {i: op for op in sg.operators for i in op.inputs if i >= 0}
        bad += [f"{t.label} ({users[t.index].label})" if t.index in users else t.label
                for t in sg.tensors if t.dtype == "float16"]
    if not bad:
        return Check("tflm_float16", "pass", 0, 0, "tensors", "no float16 tensors", "static:flatbuffer")
    return Check("tflm_float16", "fail", len(bad), 0, "tensors",
                 f"float16 weights that TFLM cannot dequantize: {_shorten(bad)}; use int8 quantization",
                 "static:flatbuffer")


def memory_checks(model: TfliteModel, arena: ArenaMeasurement, profile: TargetProfile,
                  io_buffers: bool = True) -> tuple[Check, Check]:
    """RAM: arena + margin (+ one application copy of each I/O tensor) vs ``memory.ram``;
    flash: the .tflite bytes vs ``memory.flash``."""
    arena_total = arena_with_margin(arena.bytes, profile)
    io = sum(t.nbytes for t in model.input_tensors + model.output_tensors) if io_buffers else 0
    what = (f"TFLM arena ({arena.bytes} B measured + {arena_total - arena.bytes} B margin)"
            + (f" + I/O buffers {io} B =" if io else " ="))
    ram = budget_check("ram", arena_total + io, profile.memory.ram, "bytes", f"{arena.source}:{arena.method}", what)
    return ram, _flash_check(model, profile)


def _flash_check(model: TfliteModel, profile: TargetProfile) -> Check:
    return budget_check("flash", model.size, profile.memory.flash, "bytes", "measured:file", "model (.tflite)")


@dataclass(frozen=True)
class TflmReport:
    """Everything the TFLM back end found: checks in report order, the arena, the op list source."""

    checks: tuple[Check, ...]
    arena: ArenaMeasurement | None
    arena_bytes_with_margin: int | None
    op_list_source: str

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "checks": [c.to_dict() for c in self.checks],
                "arena": self.arena.to_dict() if self.arena else None,
                "arena_bytes_with_margin": self.arena_bytes_with_margin, "op_list_source": self.op_list_source}


def tflm_checks(model_bytes: bytes, profile: TargetProfile) -> TflmReport:
    """Compatibility checks, then (if they pass) the measured arena and the RAM/flash budgets.

    Never raises for a model TFLM cannot run: that is a failed ``tflm_arena`` check
    carrying TFLM's reason. A corrupt file still raises InputError.
    """
    model = parse_tflite(model_bytes)
    ops = supported_ops()
    checks = list(compat_checks(model, ops))
    if not all(c.passed for c in checks):
        skip = Check("tflm_arena", "skip", None, None, "bytes", "not measured: the model fails the TFLM checks above")
        return TflmReport((*checks, skip, _flash_check(model, profile)), None, None, ops.source)
    try:
        arena = measure_arena(model_bytes)
    except TflmError as exc:
        fail = Check("tflm_arena", "fail", None, None, "bytes", str(exc), "measured:host")
        return TflmReport((*checks, fail, _flash_check(model, profile)), None, None, ops.source)
    checks.append(Check("tflm_arena", "pass", arena.bytes, None, "bytes", _arena_detail(arena), arena.source))
    checks.extend(memory_checks(model, arena, profile))
    return TflmReport(tuple(checks), arena, arena_with_margin(arena.bytes, profile), ops.source)


def _arena_detail(arena: ArenaMeasurement) -> str:
    note = (f"confirmed: runs at {arena.bytes} B, fails at {arena.bytes - ALIGN} B" if arena.verified
            else "not confirmed in a fresh process")
    printed = f"; TFLM printed {arena.printed_bytes} B" if arena.printed_bytes is not None else ""
    return (f"model loads and invokes in a {arena.bytes} B arena ({arena.method}, {arena.probes} probes, "
            f"{arena.crashed_probes} crashed{printed}; {note})")


def _shorten(items: list[str], n: int = 6) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1], Path(sys.argv[2])))
