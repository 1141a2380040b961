"""Latency estimates for devices edgepipe cannot run on: a per-op cost model, or Vela's."""

from edgepipe.estimate.latency import (
    LatencyEstimate,
    OpLatency,
    cost_model_latency,
    estimate_latency,
    latency_check,
    vela_latency,
)
from edgepipe.estimate.workload import OpWorkload, op_workloads, total_macs

__all__ = [
    "LatencyEstimate", "OpLatency", "OpWorkload", "cost_model_latency", "estimate_latency",
    "latency_check", "op_workloads", "total_macs", "vela_latency",
]
