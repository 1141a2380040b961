"""Per-kernel cost tables, one per runtime family: what one op costs in CPU cycles.

The tables are data (``kernels.yaml``: priors read off each library's inner
loops; ``fitted.yaml``: the few parameters fitted on published measurements and
each family's uncertainty band, written by :mod:`edgepipe.estimate.calibrate`).
This module loads them and owns the one cost formula, :func:`op_cycles`:

    cycles = core_factor x (dispatch + max(compute, memory))
    compute = scale x scale[kernel] x (mac x MACs x lanes + out x outputs + patch x im2col
              + element x outputs + byte x activation bytes) / parallel
    memory  = flash x weight bytes + sram x activation bytes

so a 3x3 convolution with 3 input channels, a depthwise layer (9 MACs per
requantized output) and a 1x1 convolution with 64 channels cost what their
kernels cost, not one MAC rate. See docs/latency.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache
from math import ceil
from pathlib import Path

import yaml

from edgepipe.estimate.workload import KERNELS, OpWorkload

HERE = Path(__file__).parent
TERMS = ("mac", "out", "patch", "element", "byte")
#: Band of a family or core that no published measurement checks: the estimate may be off 2x either way.
UNCHECKED_BAND = (0.5, 2.0)


@dataclass(frozen=True)
class KernelCost:
    """Cycles per MAC, per output, per im2col element, per element, per activation byte."""

    mac: float = 0.0
    out: float = 0.0
    patch: float = 0.0
    element: float = 0.0
    byte: float = 0.0


@dataclass(frozen=True)
class Core:
    """A core the family runs on: its cycles relative to the fitted core, and where that factor comes from."""

    name: str
    factor: float
    basis: str  # fitted | derived | assumption
    widen: float = 1.0
    note: str = ""


@dataclass(frozen=True)
class Family:
    """One runtime family's table, with its fitted parameters (``params``) applied by :func:`op_cycles`."""

    name: str
    description: str
    runtime: str
    simd: int
    dispatch: float
    kernels: dict[str, KernelCost]
    float_kernels: dict[str, KernelCost] | None
    float_mac: float
    flash: float
    sram: float
    thread_efficiency: float
    fit: tuple[str, ...]
    cores: dict[str, Core]
    sources: tuple[str, ...]
    params: dict[str, float] = field(default_factory=dict)
    band: tuple[float, float] = UNCHECKED_BAND
    holdout: dict[str, float] = field(default_factory=dict)
    checked: tuple[str, ...] = ()  # activation types the hold-out rows measured (the band holds for these only)

    def with_params(self, params: dict[str, float]) -> "Family":
        return replace(self, params=dict(params))

    def core(self, name: str | None, where: str = "cost_model.core") -> Core:
        """The named core; the only core when ``name`` is None and there is one."""
        if name is None and len(self.cores) == 1:
            return next(iter(self.cores.values()))
        if name not in self.cores:
            from edgepipe.errors import ConfigError

            raise ConfigError(where, f"{name!r} is not a core of kernel family {self.name!r}",
                              f"use one of: {', '.join(self.cores)}")
        return self.cores[name]

    def value(self, name: str, prior: float) -> float:
        return self.params.get(name, prior)


def op_cycles(w: OpWorkload, fam: Family, threads: int = 1) -> tuple[float, str]:
    """Cycles of one op on the family's fitted core (multiply by a core factor for another), and its bound.

    ``bound``: compute, memory (weights streamed from flash or activations from RAM) or
    overhead (the per-op dispatch is the larger part).
    """
    table = fam.float_kernels if w.is_float and fam.float_kernels else fam.kernels
    if w.is_float and not fam.float_kernels:
        compute = fam.float_mac * max(w.macs, w.out_elems)
    else:
        k = table[w.kernel]
        terms = {t: fam.value(f"{w.kernel}.{t}", getattr(k, t)) for t in TERMS}
        lanes = ceil(w.simd_dim / fam.simd) * fam.simd / w.simd_dim if w.simd_dim > 0 else 1.0
        compute = (terms["mac"] * w.macs * lanes + terms["out"] * w.out_elems + terms["patch"] * w.patch
                   + terms["element"] * w.out_elems + terms["byte"] * w.act_bytes)
    compute *= fam.value("scale", 1.0) * fam.value(f"scale.{w.kernel}", 1.0)
    if threads > 1:
        compute /= threads * fam.thread_efficiency
    memory = fam.value("flash", fam.flash) * w.weight_bytes + fam.value("sram", fam.sram) * w.act_bytes
    bound = "compute" if compute >= memory else "memory"
    if fam.dispatch > max(compute, memory):
        bound = "overhead"
    return fam.dispatch + max(compute, memory), bound


def family(name: str, where: str = "cost_model.kernels") -> Family:
    """The family ``name`` (ConfigError listing the known ones otherwise)."""
    known = families()
    if name not in known:
        from edgepipe.errors import ConfigError

        raise ConfigError(where, f"unknown kernel family {name!r}", f"use one of: {', '.join(known)}")
    return known[name]


@cache
def families() -> dict[str, Family]:
    """Every family of ``kernels.yaml`` (``inherit`` applied), with ``fitted.yaml``'s parameters and bands."""
    raw = yaml.safe_load((HERE / "kernels.yaml").read_text())["families"]
    fitted_path = HERE / "fitted.yaml"
    fitted = (yaml.safe_load(fitted_path.read_text()) or {}).get("families", {}) if fitted_path.is_file() else {}
    out = {}
    for name in raw:
        fam = _family(name, _resolved(raw, name))
        got = fitted.get(name, {})
        out[name] = replace(fam, params=dict(got.get("params", {})), band=tuple(got.get("band", UNCHECKED_BAND)),
                            holdout=dict(got.get("holdout", {})), checked=tuple(got.get("checked", ())))
    return out


def _resolved(raw: dict, name: str) -> dict:
    """A family's mapping with its ``inherit`` parent's keys underneath (one level of keys)."""
    entry = dict(raw[name])
    parent = entry.pop("inherit", None)
    return {**_resolved(raw, parent), **entry} if parent else entry


def _family(name: str, d: dict) -> Family:
    kernels = _table(name, d["kernels"])
    floats = _table(name, d["float_kernels"]) if "float_kernels" in d else None
    return Family(
        name=name, description=d["description"], runtime=d["runtime"], simd=int(d.get("simd", 1)),
        dispatch=float(d.get("dispatch", 0)), kernels=kernels, float_kernels=floats,
        float_mac=float(d.get("float", {}).get("mac", 0)), flash=float(d.get("memory", {}).get("flash", 0)),
        sram=float(d.get("memory", {}).get("sram", 0)), thread_efficiency=float(d.get("thread_efficiency", 1)),
        fit=tuple(d.get("fit", ())), cores={c: Core(c, **v) for c, v in d["cores"].items()},
        sources=tuple(d.get("sources", ())),
    )


def _table(name: str, d: dict) -> dict[str, KernelCost]:
    missing = [k for k in KERNELS if k not in d]
    if missing:
        raise ValueError(f"kernels.yaml: family {name!r} has no cost for kernel class(es) {', '.join(missing)}")
    return {k: KernelCost(**d[k]) for k in KERNELS}
