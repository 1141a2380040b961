"""Fit the kernel tables' free parameters on published measurements, and measure the hold-out error.

Rows (``calibration.yaml``) are published latencies of known models on known
boards, each marked ``fit`` (used here), ``holdout`` (never used to fit; their
error is the family's uncertainty band) or ``check`` (the same kernels under
another runtime: printed, not used). For each family the parameters its
``fit:`` list names (``scale``, ``flash``, ``scale.<kernel>``,
``<kernel>.<term>``) are chosen to minimise the squared log error on its fit
rows, starting from the priors of ``kernels.yaml``.

``python -m edgepipe.estimate.calibrate --write`` refits every family and
rewrites ``fitted.yaml``; ``tests/test_latency_model.py`` checks that the
committed file is what the fit gives. ``benchmarks/latency_mlperf.py`` prints
every row.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from functools import cache

import yaml

from edgepipe.estimate.kernels import HERE, Family, families, op_cycles
from edgepipe.estimate.reference_models import reference_model
from edgepipe.estimate.workload import OpWorkload, op_workloads
from edgepipe.units import parse_energy, parse_frequency, parse_time

#: Hold-out bands are never narrower than this either way: two or three rows cannot show the full spread.
MIN_BAND = 1.1


@dataclass(frozen=True)
class Row:
    """One published measurement (see calibration.yaml for the keys)."""

    id: str
    family: str
    core: str
    clock_hz: float
    model: str
    role: str
    latency_s: float
    source: str
    energy_j: float | None = None
    profile: str | None = None
    threads: int = 1
    dtype: str = "int8"
    kernel_only: bool = False
    energy_role: str = "holdout"


@cache
def rows() -> tuple[Row, ...]:
    raw = yaml.safe_load((HERE / "calibration.yaml").read_text())["rows"]
    return tuple(Row(
        id=r["id"], family=r["family"], core=r["core"], clock_hz=parse_frequency(r["clock"]), model=r["model"],
        role=r["role"], latency_s=parse_time(r["latency"]), source=r["source"],
        energy_j=parse_energy(r["energy"]) if "energy" in r else None, profile=r.get("profile"),
        threads=int(r.get("threads", 1)), dtype=r.get("dtype", "int8"), kernel_only=bool(r.get("kernel_only", False)),
        energy_role=r.get("energy_role", "check" if r["role"] == "check" else "holdout"),
    ) for r in raw)


@cache
def _workloads(model: str, dtype: str) -> tuple[OpWorkload, ...]:
    return tuple(op_workloads(reference_model(model, dtype)))


def estimate_row(row: Row, fam: Family) -> float:
    """Seconds the family's table gives for the row's model, core, clock and threads."""
    cycles = sum(op_cycles(w, fam, row.threads)[0] - (fam.dispatch if row.kernel_only else 0.0)
                 for w in _workloads(row.model, row.dtype))
    return cycles * fam.core(row.core, f"calibration row {row.id}").factor / row.clock_hz


def ratios(fam: Family, role: str | None = None) -> dict[str, float]:
    """measured / estimated for the family's rows (of one role, or all)."""
    return {r.id: r.latency_s / estimate_row(r, fam) for r in rows()
            if r.family == fam.name and (role is None or r.role == role)}


def fit_family(fam: Family) -> dict[str, float]:
    """The parameters of ``fam.fit`` that minimise the squared log error on the fit rows."""
    fit_rows = [r for r in rows() if r.family == fam.name and r.role == "fit"]
    if not fam.fit or not fit_rows:
        return {}
    params = {p: _prior(fam, p) for p in fam.fit}

    def loss(p: dict[str, float]) -> float:
        f = fam.with_params(p)
        return sum(math.log(estimate_row(r, f) / r.latency_s) ** 2 for r in fit_rows)

    for _ in range(12):  # coordinate descent; one parameter per row set converges in one round
        before = dict(params)
        for name in fam.fit:
            params[name] = _golden(lambda v: loss({**params, name: v}), params[name])
        if all(abs(params[k] / before[k] - 1) < 1e-4 for k in params):
            break
    return {k: float(f"{v:.4g}") for k, v in params.items()}


def band(holdout: dict[str, float]) -> tuple[float, float]:
    """(low, high) multipliers of an estimate: the hold-out ratios' range, at least 1/1.1 to 1.1."""
    if not holdout:
        from edgepipe.estimate.kernels import UNCHECKED_BAND

        return UNCHECKED_BAND
    return (round(min(min(holdout.values()), 1 / MIN_BAND), 3), round(max(max(holdout.values()), MIN_BAND), 3))


def fit_all() -> dict[str, dict]:
    """Every family: fitted parameters, hold-out ratios and band (what fitted.yaml holds)."""
    out = {}
    for name, fam in families().items():
        fitted = fam.with_params(fit_family(fam.with_params({})))
        holdout = {k: round(v, 3) for k, v in ratios(fitted, "holdout").items()}
        checked = sorted({r.dtype for r in rows() if r.family == name and r.role == "holdout"})
        out[name] = {"params": fitted.params, "band": list(band(holdout)), "holdout": holdout, "checked": checked}
    return out


def _prior(fam: Family, name: str) -> float:
    if name == "flash":
        return fam.flash or 1.0
    if name == "sram":
        return fam.sram or 0.1
    if "." in name and not name.startswith("scale."):
        kernel, term = name.split(".")
        return getattr(fam.kernels[kernel], term) or 1.0
    return 1.0


def _golden(f, x0: float, span: float = 5.0, steps: int = 40) -> float:
    """Minimise f over [x0 / e^span, x0 * e^span] in log space (f is unimodal enough here)."""
    lo, hi = math.log(x0) - span, math.log(x0) + span
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(math.exp(a)), f(math.exp(b))
    for _ in range(steps):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = f(math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(math.exp(b))
    return math.exp((lo + hi) / 2)


HEADER = """\
# GENERATED by `python -m edgepipe.estimate.calibrate --write` from kernels.yaml and calibration.yaml.
# Do not edit: change the priors or the rows and regenerate. tests/test_latency_model.py checks it.
# params: fitted on the rows marked `fit`; holdout: measured / estimated on the rows marked `holdout`;
# band: the (low, high) multipliers every estimate of the family carries, for models of the activation
# types in `checked` (others get the unchecked band, 0.5-2x).
"""


def main(argv: list[str]) -> int:
    result = fit_all()
    text = HEADER + yaml.safe_dump({"families": result}, sort_keys=False, width=120)
    if "--write" in argv:
        (HERE / "fitted.yaml").write_text(text)
        families.cache_clear()
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
