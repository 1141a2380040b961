"""TensorFlow Lite Micro on the host: op support, the real arena need, bit-exact runs.

TFLM's Python runtime (``tflite_micro``) runs the same kernels as the firmware's
reference build, bit-exact with LiteRT's ``BUILTIN_REF``. It reports how much
arena a model needs only by printing ``Arena allocation total N bytes`` to the
process's stderr from C++, so the figure is read by redirecting file descriptor 2
(:func:`edgepipe.fdcapture.captured`), not ``sys.stderr``. The printed total is the smallest
arena that works; :func:`measure_arena` proves it (the model runs at that size and
fails at half) and falls back to bisection when no figure is printed.

TFLM can abort the process on a model it cannot handle, so anything that hands
a model to TFLM for the first time runs in a child process
(``python -m edgepipe.runtimes.tflm``) and a crash becomes a :class:`TflmError`.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from edgepipe.checks import Check, budget_check
from edgepipe.config.schema import TargetProfile
from edgepipe.errors import EdgepipeError
from edgepipe.fdcapture import captured
from edgepipe.runtimes.quant import dequantize, quantize
from edgepipe.runtimes.tflm_ops import CUSTOM_ADD_METHODS, STATIC_BUILTINS, WEIGHTED_OPS
from edgepipe.tflite.model import TfliteModel, parse_tflite

MIN_PROBE_ARENA = 4 * 1024 * 1024
ALIGN = 16
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

    ``method``: ``tflm:print_allocations`` (TFLM's recording allocator) or
    ``tflm:bisection`` (smallest arena that loads and invokes). ``verified``: the
    model runs with ``bytes`` and fails with ``bytes // 2``. ``head_bytes``: the planned
    (non-persistent) tensors; ``tail_bytes``: persistent runtime structures (tensor
    structs, node registrations, per-channel quantization data); None after bisection.
    """

    bytes: int
    method: str
    verified: bool
    probe_arena: int
    head_bytes: int | None = None
    tail_bytes: int | None = None
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


def _runs(model_bytes: bytes, model: TfliteModel, arena: int) -> bool:
    try:
        _invoke_zeros(_new_interpreter(model_bytes, arena), model)
        return True
    except TflmError:
        return False


def _probe(model_bytes: bytes, model: TfliteModel) -> tuple[object, int]:
    """Load and invoke once in a generous arena, growing it by what TFLM says is missing."""
    arena = max(10 * len(model_bytes), MIN_PROBE_ARENA)
    for _ in range(4):
        try:
            it = _new_interpreter(model_bytes, arena)
        except TflmError as exc:
            missing = _MISSING_RE.search(exc.log)
            if not missing:
                raise
            arena = 2 * (arena + int(missing.group(1)))
            continue
        _invoke_zeros(it, model)
        return it, arena
    raise TflmError("model", f"does not fit even a {arena} byte arena")


def _measure_in_process(model_bytes: bytes) -> ArenaMeasurement:
    model = parse_tflite(model_bytes)
    it, probe_arena = _probe(model_bytes, model)
    with captured((2,)) as log:
        it.print_allocations()
    found = _TOTAL_RE.search(log.text)
    if found:
        total = int(found.group(1))
        if _runs(model_bytes, model, total):
            verified = not _runs(model_bytes, model, total // 2)
            head, tail = _HEAD_RE.search(log.text), _TAIL_RE.search(log.text)
            return ArenaMeasurement(total, "tflm:print_allocations", verified, probe_arena,
                                    int(head.group(1)) if head else None, int(tail.group(1)) if tail else None)
    return _bisect(model_bytes, model, probe_arena)


def _bisect(model_bytes: bytes, model: TfliteModel, hi: int) -> ArenaMeasurement:
    """Smallest arena (to 16 bytes) that loads and invokes."""
    lo = 0
    while hi - lo > ALIGN:
        mid = (lo + hi) // 2
        if _runs(model_bytes, model, mid):
            hi = mid
        else:
            lo = mid
    return ArenaMeasurement(hi, "tflm:bisection", not _runs(model_bytes, model, hi // 2), hi)


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
    try:
        if command == "measure":
            doc = _measure_in_process(model_path.read_bytes()).to_dict()
        elif command == "ops":
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
    """The smallest tensor arena the model loads and invokes in (bytes).

    Raises TflmError (an EdgepipeError) with TFLM's reason when the model cannot
    run at all; with ``isolate`` (default) a TFLM crash cannot take the caller down.
    """
    parse_tflite(model_bytes, where)  # a corrupt file is an InputError before TFLM sees it
    if not isolate:
        return _measure_in_process(model_bytes)
    doc = _isolated("measure", model_bytes, timeout=timeout, where=where)
    return ArenaMeasurement(**doc)


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
    missing = sorted({op.op for op in model.operators if not ops.supports(op.op)})
    blamed = [f"{op.op} #{op.index}" for op in model.operators if op.op in missing]
    kernel = (Check("tflm_ops", "pass", 0, 0, "ops", f"all {len(model.op_counts)} op types have TFLM kernels",
                    "static:flatbuffer") if not missing else
              Check("tflm_ops", "fail", len(blamed), 0, "ops",
                    f"TFLite Micro has no kernel for {', '.join(missing)} (used by {_shorten(blamed)}); "
                    f"replace these layers or pick a runtime that has them", "static:flatbuffer"))
    return (kernel, _hybrid_check(model), _sparse_check(model), _float16_check(model))


def _hybrid_check(model: TfliteModel) -> Check:
    bad = []
    for op in model.operators:
        if op.op not in WEIGHTED_OPS:
            continue
        ins = [model.tensors[i] for i in op.inputs if i >= 0]
        act_float = any(not t.is_constant and t.dtype in _FLOAT for t in ins)
        int_weights = any(t.is_constant and t.dtype in ("int8", "int4", "uint8") for t in ins)
        if act_float and int_weights:
            bad.append(f"{op.op} #{op.index}")
    if not bad:
        return Check("tflm_hybrid", "pass", 0, 0, "ops", "no hybrid (float-activation, int8-weight) ops",
                     "static:flatbuffer")
    return Check("tflm_hybrid", "fail", len(bad), 0, "ops",
                 f"hybrid (dynamic-range) ops that TFLM rejects: {_shorten(bad)}; "
                 "convert with full-integer quantization (representative dataset, TFLITE_BUILTINS_INT8)",
                 "static:flatbuffer")


def _sparse_check(model: TfliteModel) -> Check:
    densify = [f"DENSIFY #{op.index}" for op in model.operators if op.op == "DENSIFY"]
    if not densify and not model.has_sparsity:
        return Check("tflm_sparse", "pass", 0, 0, "ops", "no sparse tensors", "static:flatbuffer")
    return Check("tflm_sparse", "fail", max(len(densify), 1), 0, "ops",
                 f"sparse tensors / {_shorten(densify) or 'sparsity metadata'}: TFLM has no DENSIFY kernel; "
                 "convert without Optimize.EXPERIMENTAL_SPARSITY", "static:flatbuffer")


def _float16_check(model: TfliteModel) -> Check:
    users = {i: op for op in model.operators for i in op.inputs if i >= 0}
    bad = [f"{t.name} ({users[t.index].op} #{users[t.index].index})" if t.index in users else t.name
           for t in model.tensors if t.dtype == "float16"]
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
    note = "verified: runs at this size, fails at half" if arena.verified else "not verified at half size"
    checks.append(Check("tflm_arena", "pass", arena.bytes, None, "bytes",
                        f"model loads and invokes in a {arena.bytes} B arena ({arena.method}; {note})",
                        arena.source))
    checks.extend(memory_checks(model, arena, profile))
    return TflmReport(tuple(checks), arena, arena_with_margin(arena.bytes, profile), ops.source)


def _shorten(items: list[str], n: int = 6) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1], Path(sys.argv[2])))
