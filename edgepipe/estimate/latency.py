"""Latency of one inference on the device, estimated without the device.

CPU targets (LiteRT, TFLite Micro): a roofline per op,

    time(op) = max(MACs / rate, bytes / memory_bandwidth) + per_op_overhead

with the sustained rates of the profile's ``cost_model`` (int8 or float by the
op's activation type). Ethos-U: Vela's cycle estimate, per layer from its
per-layer CSV; ops Vela leaves on the CPU are costed with the cost model when
the profile has one. Every figure carries its ``source``. See docs/latency.md
for the model, its limits and where each profile's figures come from.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field

from edgepipe.checks import Check, budget_check
from edgepipe.config.schema import CostModel, Runtime, TargetProfile
from edgepipe.errors import ConfigError
from edgepipe.estimate.workload import OpWorkload, op_workloads
from edgepipe.tflite.model import TfliteModel, read_tflite

COST_MODEL = "estimate:cost-model"
VELA = "estimate:vela"


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

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LatencyEstimate:
    seconds: float
    source: str
    runtime: str
    ops: tuple[OpLatency, ...]
    assumptions: dict = field(default_factory=dict)
    detail: str = ""

    def slowest(self, n: int = 5) -> list[OpLatency]:
        return sorted(self.ops, key=lambda o: -o.seconds)[:n]

    def to_dict(self) -> dict:
        return {"seconds": self.seconds, "source": self.source, "runtime": self.runtime,
                "assumptions": self.assumptions, "detail": self.detail,
                "ops": [o.to_dict() for o in self.ops]}


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
    return cost_model_latency(model, profile.cost_model, profile.name, profile.runtime.value)


def cost_model_latency(model: TfliteModel, cm: CostModel, where: str = "profile",
                       runtime: str = "cpu") -> LatencyEstimate:
    """The roofline sum over ops with the rates of ``cm`` (see module docstring)."""
    loads = op_workloads(model)
    ops = tuple(_op_time(w, cm, where) for w in loads)
    return LatencyEstimate(sum(o.seconds for o in ops), COST_MODEL, runtime, ops, _assumptions(cm))


def vela_latency(vela, compiled: TfliteModel, profile: TargetProfile) -> LatencyEstimate:
    """Vela's estimate, per original op; CPU-fallback ops costed by the profile's cost model."""
    clock = vela.core_clock_hz or 1.0
    per_name: dict[str, list] = {}
    for layer in vela.layers:
        if layer.target != "NPU":
            continue
        entry = per_name.setdefault(layer.name, [layer.original_op, 0, 0])
        entry[1] += layer.cycles
        entry[2] += layer.macs
    ops = [OpLatency(i, op, name, float(macs), 0, cycles / clock, "npu", VELA)
           for i, (name, (op, cycles, macs)) in enumerate(per_name.items())]
    cpu = [w for w in op_workloads(compiled) if w.op != "CUSTOM:ethos-u"]
    detail = ""
    if cpu and profile.cost_model.int8_macs_per_second:
        ops += [_op_time(w, profile.cost_model, profile.name) for w in cpu]
        detail = f"{len(cpu)} CPU-fallback op(s) costed with the profile's cost model"
    elif cpu:
        detail = (f"{len(cpu)} CPU-fallback op(s) not included: the profile has no cost_model "
                  "for its CPU (Vela estimates NPU time only)")
    cpu_seconds = sum(o.seconds for o in ops if o.source == COST_MODEL)
    return LatencyEstimate(vela.inference_time_s + cpu_seconds, VELA, "ethos-u", tuple(ops),
                           {"npu_clock_hz": clock, "system_config": vela.system_config,
                            "accelerator_config": vela.accelerator_config, **_assumptions(profile.cost_model)},
                           detail)


def latency_check(estimate: LatencyEstimate, profile: TargetProfile) -> Check:
    """Estimated latency vs the profile's ``latency`` budget, naming the slowest ops."""
    check = budget_check("latency", estimate.seconds, profile.latency, "s", estimate.source, "estimated latency")
    worst = ", ".join(f"{o.op} {o.name!r} {o.seconds * 1e3:.2f} ms ({o.bound})" for o in estimate.slowest(3))
    detail = check.detail + (f"; slowest ops: {worst}" if worst else "")
    return Check(check.name, check.status, check.measured, check.budget, check.unit, detail, check.source)


def _op_time(w: OpWorkload, cm: CostModel, where: str) -> OpLatency:
    rate = cm.float_macs_per_second if w.is_float else cm.int8_macs_per_second
    if rate is None:
        key = "float_macs_per_second" if w.is_float else "int8_macs_per_second"
        raise ConfigError(f"{where}: cost_model.{key}",
                          f"is not set, so the latency of {w.op} ({w.dtype}) cannot be estimated",
                          "add the sustained rate to the target profile; see docs/latency.md")
    compute = w.macs / rate
    memory = w.bytes / cm.memory_bandwidth if cm.memory_bandwidth else 0.0
    overhead = cm.per_op_overhead or 0.0
    bound = "compute" if compute >= memory else "memory"
    if overhead > max(compute, memory):
        bound = "overhead"
    return OpLatency(w.index, w.op, w.name, w.macs, w.bytes, max(compute, memory) + overhead, bound, COST_MODEL)


def _assumptions(cm: CostModel) -> dict:
    return {"int8_macs_per_second": cm.int8_macs_per_second, "float_macs_per_second": cm.float_macs_per_second,
            "memory_bandwidth_bytes_per_second": cm.memory_bandwidth, "per_op_overhead_s": cm.per_op_overhead}
