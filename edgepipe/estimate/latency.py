"""Latency of one inference on the device, estimated without the device.

CPU targets (LiteRT, TFLite Micro) whose profile names a kernel family
(``cost_model.kernels``): the per-kernel cost tables of
:mod:`edgepipe.estimate.kernels`, in cycles at ``device.clock``. Profiles that
give only sustained rates keep the older roofline per op,

    time(op) = max(MACs / rate, bytes / memory_bandwidth) + per_op_overhead

Ethos-U: Vela's cycle estimate, per layer from its per-layer CSV; ops Vela
leaves on the CPU are costed with the profile's CPU model. Every figure carries
its ``source`` and an uncertainty band (``low_s``..``high_s``): for the kernel
tables the error of their hold-out rows, otherwise a stated default. See
docs/latency.md for the model, its calibration and its limits.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field

from edgepipe.checks import Check, budget_check
from edgepipe.config.schema import CostModel, Runtime, TargetProfile
from edgepipe.errors import ConfigError
from edgepipe.estimate.kernels import UNCHECKED_BAND, family, op_cycles
from edgepipe.estimate.workload import OpWorkload, op_workloads
from edgepipe.tflite.model import TfliteModel, read_tflite

COST_MODEL = "estimate:cost-model"
VELA = "estimate:vela"
#: Vela's static performance estimate has not been checked against hardware here: +-1.5x, stated as such.
VELA_BAND = (1 / 1.5, 1.5)


@dataclass(frozen=True)
class OpLatency:
    """One op's share. ``bound``: compute, memory, npu (Vela cycles) or overhead."""

    index: int
    op: str
    name: str
    macs: float
    bytes: int
    seconds: float
    bound: str
    source: str
    kernel: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LatencyEstimate:
    """The total, its per-op parts, and the range the true latency is expected in (``low_s``..``high_s``)."""

    seconds: float
    source: str
    runtime: str
    ops: tuple[OpLatency, ...]
    assumptions: dict = field(default_factory=dict)
    detail: str = ""
    band: tuple[float, float] = UNCHECKED_BAND
    band_basis: str = "not calibrated: the estimate may be off 2x either way"

    @property
    def low_s(self) -> float:
        return self.seconds * self.band[0]

    @property
    def high_s(self) -> float:
        return self.seconds * self.band[1]

    def slowest(self, n: int = 5) -> list[OpLatency]:
        return sorted(self.ops, key=lambda o: -o.seconds)[:n]

    def to_dict(self) -> dict:
        return {"seconds": self.seconds, "low_s": self.low_s, "high_s": self.high_s, "band": list(self.band),
                "band_basis": self.band_basis, "source": self.source, "runtime": self.runtime,
                "assumptions": self.assumptions, "detail": self.detail, "ops": [o.to_dict() for o in self.ops]}


def estimate_latency(model: TfliteModel, profile: TargetProfile, vela=None) -> LatencyEstimate:
    """Latency of one inference of ``model`` on the profile's device.

    ``vela``: a :class:`edgepipe.runtimes.vela.VelaResult` for Ethos-U targets; when
    absent, Vela is run into a temporary folder.
    """
    if profile.runtime is Runtime.ETHOS_U:
        if vela is None:
            from edgepipe.runtimes.vela import compile_vela

            with tempfile.TemporaryDirectory(prefix="edgepipe-vela-") as d:
                vela = compile_vela(model.data, profile, d)
                compiled = read_tflite(vela.output_path)
        else:
            compiled = read_tflite(vela.output_path)
        return vela_latency(vela, compiled, profile)
    return cpu_latency(model, profile)


def cpu_latency(model: TfliteModel, profile: TargetProfile) -> LatencyEstimate:
    """The profile's CPU model: its kernel family's tables when it names one, else its sustained rates."""
    if profile.cost_model.kernels:
        return kernel_model_latency(op_workloads(model), profile)
    return cost_model_latency(model, profile.cost_model, profile.name, profile.runtime.value)


def kernel_model_latency(loads: list[OpWorkload], profile: TargetProfile) -> LatencyEstimate:
    """Cycles per op from the family's cost table, at the device clock, on the profile's core."""
    cm = profile.cost_model
    fam = family(cm.kernels, f"{profile.name}: cost_model.kernels")
    core = fam.core(cm.core, f"{profile.name}: cost_model.core")
    clock = profile.device.clock
    if not clock:
        raise ConfigError(f"{profile.name}: device.clock", "is not set, so cycles cannot become seconds",
                          "add the CPU clock the model runs at, e.g. clock: 120MHz")
    threads = profile.threads if fam.runtime == "litert" else 1
    ops = []
    for w in loads:
        cycles, bound = op_cycles(w, fam, threads)
        ops.append(OpLatency(w.index, w.op, w.name, w.macs, w.bytes, cycles * core.factor / clock, bound,
                             COST_MODEL, w.kernel))
    dtype = _dtype(loads)
    band = fam.band if dtype in fam.checked else UNCHECKED_BAND
    lo, hi = band[0] / core.widen, band[1] * core.widen
    basis = _band_basis(fam, core, dtype)
    assumptions = {"kernel_family": fam.name, "core": core.name, "core_factor": core.factor,
                   "core_basis": core.basis, "clock_hz": clock, "threads": threads, "fitted": fam.params}
    return LatencyEstimate(sum(o.seconds for o in ops), COST_MODEL, profile.runtime.value, tuple(ops),
                           assumptions, band=(lo, hi), band_basis=basis)


def cost_model_latency(model: TfliteModel, cm: CostModel, where: str = "profile",
                       runtime: str = "cpu") -> LatencyEstimate:
    """The roofline sum over ops with the rates of ``cm`` (profiles without ``kernels``)."""
    return rate_model_latency(op_workloads(model), cm, where, runtime)


def rate_model_latency(loads: list[OpWorkload], cm: CostModel, where: str = "profile",
                       runtime: str = "cpu") -> LatencyEstimate:
    ops = tuple(_op_time(w, cm, where) for w in loads)
    return LatencyEstimate(sum(o.seconds for o in ops), COST_MODEL, runtime, ops, _assumptions(cm),
                           band_basis="sustained rates, not calibrated: the estimate may be off 2x either way")


def vela_latency(vela, compiled: TfliteModel, profile: TargetProfile) -> LatencyEstimate:
    """Vela's estimate, per original op; CPU-fallback ops costed by the profile's CPU model."""
    ops = _npu_ops(vela)
    cpu_est, detail = _cpu_fallback([w for w in op_workloads(compiled) if w.op != "CUSTOM:ethos-u"], profile)
    cpu_seconds = cpu_est.seconds if cpu_est else 0.0
    total = vela.inference_time_s + cpu_seconds
    band = _merge_bands(((vela.inference_time_s, VELA_BAND), (cpu_seconds, cpu_est.band if cpu_est else VELA_BAND)),
                        total)
    basis = ("Vela's static cycle estimate, not checked against hardware here: +-1.5x (assumption)"
             + (f"; CPU ops: {cpu_est.band_basis}" if cpu_est else ""))
    assumptions = {"npu_clock_hz": vela.core_clock_hz, "system_config": vela.system_config,
                   "memory_mode": vela.memory_mode, "accelerator_config": vela.accelerator_config,
                   **(cpu_est.assumptions if cpu_est else _assumptions(profile.cost_model))}
    return LatencyEstimate(total, VELA, "ethos-u", (*ops, *(cpu_est.ops if cpu_est else ())), assumptions, detail,
                           band=band, band_basis=basis)


def _npu_ops(vela) -> list[OpLatency]:
    """Vela's per-layer cycles, summed per original op (its output tensor), in seconds at the NPU clock."""
    clock = vela.core_clock_hz or 1.0
    per_name: dict[str, list] = {}
    for layer in vela.layers:
        if layer.target != "NPU":
            continue
        entry = per_name.setdefault(layer.name, [layer.original_op, 0, 0])
        entry[1] += layer.cycles
        entry[2] += layer.macs
    return [OpLatency(i, op, name, float(macs), 0, cycles / clock, "npu", VELA)
            for i, (name, (op, cycles, macs)) in enumerate(per_name.items())]


def _cpu_fallback(cpu: list[OpWorkload], profile: TargetProfile) -> tuple[LatencyEstimate | None, str]:
    """The ops Vela left on the CPU, costed by the profile's CPU model (None when there are none or no model)."""
    if not cpu:
        return None, ""
    cm = profile.cost_model
    if not (cm.kernels or cm.int8_macs_per_second):
        return None, (f"{len(cpu)} CPU-fallback op(s) not included: the profile has no cost_model "
                      "for its CPU (Vela estimates NPU time only)")
    est = kernel_model_latency(cpu, profile) if cm.kernels else rate_model_latency(cpu, cm, profile.name)
    return est, f"{len(cpu)} CPU-fallback op(s) costed with the profile's CPU model"


def latency_check(estimate: LatencyEstimate, profile: TargetProfile) -> Check:
    """Estimated latency vs the profile's ``latency`` budget, naming the slowest ops and the expected range."""
    check = budget_check("latency", estimate.seconds, profile.latency, "s", estimate.source, "estimated latency")
    worst = ", ".join(f"{o.op} {o.name!r} {o.seconds * 1e3:.2f} ms ({o.bound})" for o in estimate.slowest(3))
    from edgepipe.units import format_time

    detail = (check.detail + f" (expected {format_time(estimate.low_s)}–{format_time(estimate.high_s)})"
              + (f"; slowest ops: {worst}" if worst else ""))
    return Check(check.name, check.status, check.measured, check.budget, check.unit, detail, check.source)


def _dtype(loads: list[OpWorkload]) -> str:
    """float32 when float ops carry most of the work, else int8 (what the family's band was checked on)."""
    floats = sum(w.macs for w in loads if w.is_float)
    return "float32" if floats > sum(w.macs for w in loads) / 2 else "int8"


def _band_basis(fam, core, dtype: str) -> str:
    if fam.holdout and dtype in fam.checked:
        rows = ", ".join(f"{k} {v:.2f}x" for k, v in fam.holdout.items())
        basis = f"hold-out error of {fam.name} (measured/estimated: {rows})"
    elif fam.holdout:
        basis = (f"{fam.name} was checked on {', '.join(fam.checked)} models only; its {dtype} kernels are "
                 "priors: the estimate may be off 2x either way")
    else:
        basis = f"{fam.name} has no hold-out measurement: the estimate may be off 2x either way"
    if core.basis != "fitted":
        basis += f"; core {core.name} is {core.basis} ({core.note}), band widened {core.widen}x"
    return basis


def _merge_bands(parts, total: float) -> tuple[float, float]:
    """The band of a sum of independently estimated parts: each part's bounds, added."""
    if total <= 0:
        return VELA_BAND
    return (sum(s * b[0] for s, b in parts) / total, sum(s * b[1] for s, b in parts) / total)


def _op_time(w: OpWorkload, cm: CostModel, where: str) -> OpLatency:
    rate = cm.float_macs_per_second if w.is_float else cm.int8_macs_per_second
    if rate is None:
        key = "float_macs_per_second" if w.is_float else "int8_macs_per_second"
        raise ConfigError(f"{where}: cost_model.{key}",
                          f"is not set, so the latency of {w.op} ({w.dtype}) cannot be estimated",
                          "add the sustained rate to the target profile, or name a kernel family "
                          "(cost_model.kernels); see docs/latency.md")
    compute = w.macs / rate
    memory = w.bytes / cm.memory_bandwidth if cm.memory_bandwidth else 0.0
    overhead = cm.per_op_overhead or 0.0
    bound = "compute" if compute >= memory else "memory"
    if overhead > max(compute, memory):
        bound = "overhead"
    return OpLatency(w.index, w.op, w.name, w.macs, w.bytes, max(compute, memory) + overhead, bound, COST_MODEL,
                     w.kernel)


def _assumptions(cm: CostModel) -> dict:
    return {"int8_macs_per_second": cm.int8_macs_per_second, "float_macs_per_second": cm.float_macs_per_second,
            "memory_bandwidth_bytes_per_second": cm.memory_bandwidth, "per_op_overhead_s": cm.per_op_overhead}
