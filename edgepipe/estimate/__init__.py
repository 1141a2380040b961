"""Latency and energy estimates for devices edgepipe cannot run on: per-kernel cost tables, or Vela's."""

from edgepipe.estimate.energy import EnergyEstimate, energy_check, estimate_energy
from edgepipe.estimate.latency import (
    LatencyEstimate,
    OpLatency,
    cost_model_latency,
    cpu_latency,
    estimate_latency,
    latency_check,
    vela_latency,
)
from edgepipe.estimate.workload import OpWorkload, op_workloads, total_macs

__all__ = [
    "EnergyEstimate", "LatencyEstimate", "OpLatency", "OpWorkload", "cost_model_latency", "cpu_latency",
    "energy_check", "estimate_energy", "estimate_latency", "latency_check", "op_workloads", "total_macs",
    "vela_latency",
]
