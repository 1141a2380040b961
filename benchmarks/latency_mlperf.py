"""Latency and energy estimates against every published measurement the kernel tables use.

For each row of edgepipe/estimate/calibration.yaml (MLPerf Tiny v0.5-v1.2
results for TFLite Micro + CMSIS-NN boards, the same CMSIS-NN kernels under
microTVM, ESP-NN's ESP32-S3 kernel table and person detection, XNNPACK's
Raspberry Pi 4 / Pixel 3a MobileNets) it estimates the published model
(rebuilt op for op by edgepipe/estimate/reference_models.py, zero weights) on
that row's family, core and clock, and prints measured, estimated,
estimate/measured, whether the measurement falls inside the estimate's band,
and the row's role: ``fit`` (used to fit the table), ``holdout`` (never used;
sets the band) or ``check`` (same kernels under another runtime). MCU rows also
show what a single clock-scaled rate of 0.6 MAC/cycle (the old nrf52840
assumption) would have said. Energy rows multiply the estimate by the power of
the profile the row names and compare with the MLPerf Tiny energy-mode result.
A summary gives min / median / max of estimate/measured per role.

    .venv/bin/python benchmarks/latency_mlperf.py [--models DIR]

``--models DIR``: also compare the rebuilt models op by op with the original
MLPerf Tiny int8 .tflite files in DIR (ad01_int8, pretrainedResnet_quant,
kws_ref_model, vww_96_int8 from github.com/mlcommons/tiny
benchmark/training/*/trained_models, Apache-2.0); they are not shipped.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgepipe.config.targets import TargetRegistry  # noqa: E402
from edgepipe.estimate.calibrate import _workloads, estimate_row, rows  # noqa: E402
from edgepipe.estimate.kernels import families  # noqa: E402
from edgepipe.estimate.reference_models import reference_model  # noqa: E402
from edgepipe.estimate.workload import op_workloads, total_macs  # noqa: E402
from edgepipe.units import format_time  # noqa: E402

ORIGINALS = {"ad": "ad01_int8", "ic": "pretrainedResnet_quant", "kws": "kws_ref_model", "vww": "vww_96_int8"}
OLD_MAC_PER_CYCLE = 0.6
LATENCY_GOAL, ENERGY_GOAL = (0.8, 1.25), (0.7, 1.4)


def latency_table() -> dict[str, list[float]]:
    """Print one line per row; return estimate/measured per role."""
    by_role: dict[str, list[float]] = {}
    print(f"{'row':34s} {'family':21s} {'core @ clock':22s} {'model':15s} {'role':7s} {'measured':>10s} "
          f"{'estimate':>10s} {'est/meas':>8s} {'band':>11s} {'in band':>7s} {'0.6 MAC/c':>9s}")
    for r in rows():
        fam = families()[r.family]
        est = estimate_row(r, fam)
        core = fam.core(r.core)
        lo, hi = _band(fam, core, r.dtype)
        ratio = est / r.latency_s
        inside = lo <= r.latency_s / est <= hi
        old = ""
        if fam.runtime == "tflm" and not r.kernel_only:
            old_s = total_macs(reference_model(r.model, r.dtype)) / (OLD_MAC_PER_CYCLE * r.clock_hz)
            old = f"{old_s / r.latency_s:.2f}x"
        by_role.setdefault(r.role, []).append(ratio)
        print(f"{r.id:34s} {r.family:21s} {r.core + ' @ ' + _mhz(r.clock_hz):22s} {r.model:15s} {r.role:7s} "
              f"{format_time(r.latency_s):>10s} {format_time(est):>10s} {ratio:8.2f} "
              f"{f'{lo:.2f}-{hi:.2f}':>11s} {'yes' if inside else 'NO':>7s} {old:>9s}")
    return by_role


def energy_table() -> dict[str, list[float]]:
    """Energy rows: the row's estimate x the named profile's power, vs the measured energy per inference."""
    registry = TargetRegistry([])
    by_role: dict[str, list[float]] = {}
    print(f"\n{'row':34s} {'profile':15s} {'power':>9s} {'basis':9s} {'role':7s} {'measured':>11s} "
          f"{'estimate':>11s} {'est/meas':>8s}")
    for r in rows():
        if r.energy_j is None or r.profile is None:
            continue
        power = registry.get(r.profile).profile.device.power
        est = estimate_row(r, families()[r.family]) * power.active
        ratio = est / r.energy_j
        by_role.setdefault(r.energy_role, []).append(ratio)
        print(f"{r.id:34s} {r.profile:15s} {power.active * 1e3:7.1f}mW {power.basis:9s} {r.energy_role:7s} "
              f"{r.energy_j * 1e6:9.0f}uJ {est * 1e6:9.0f}uJ {ratio:8.2f}")
    return by_role


def summary(title: str, by_role: dict[str, list[float]], goal: tuple[float, float]) -> None:
    print(f"\n{title}: estimate / measured")
    for role, values in by_role.items():
        inside = sum(goal[0] <= v <= goal[1] for v in values)
        print(f"  {role:8s} n={len(values):2d}  min {min(values):.2f}  median {statistics.median(values):.2f}  "
              f"max {max(values):.2f}  within {goal[0]}-{goal[1]}x: {inside}/{len(values)}")


def compare_originals(folder: Path) -> None:
    """Op by op: the rebuilt reference models against the published .tflite files."""
    from edgepipe.tflite.model import read_tflite

    fields = ("op", "macs", "kernel", "simd_dim", "out_elems", "patch", "weight_bytes", "act_bytes", "dtype")
    print()
    for name, stem in ORIGINALS.items():
        path = folder / f"{stem}.tflite"
        if not path.is_file():
            print(f"{name}: {path} not found")
            continue
        real, rebuilt = op_workloads(read_tflite(path)), _workloads(name, "int8")
        diffs = [(i, f) for i, (a, b) in enumerate(zip(real, rebuilt)) for f in fields
                 if getattr(a, f) != getattr(b, f)]
        same = len(real) == len(rebuilt) and not diffs
        print(f"{name}: {len(real)} ops in {path.name}, {len(rebuilt)} rebuilt: "
              + ("identical op workloads" if same else f"DIFFERENT: {diffs[:5]}"))


def _band(fam, core, dtype: str) -> tuple[float, float]:
    from edgepipe.estimate.kernels import UNCHECKED_BAND

    band = fam.band if dtype in fam.checked else UNCHECKED_BAND
    return band[0] / core.widen, band[1] * core.widen


def _mhz(hz: float) -> str:
    return f"{hz / 1e9:g} GHz" if hz >= 1e9 else f"{hz / 1e6:g} MHz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, help="folder with the original MLPerf Tiny int8 .tflite files")
    args = parser.parse_args()
    latency = latency_table()
    energy = energy_table()
    summary("latency", latency, LATENCY_GOAL)
    summary("energy", energy, ENERGY_GOAL)
    if args.models:
        compare_originals(args.models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
