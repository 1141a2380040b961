"""Budgets: model bytes vs flash, working memory vs RAM, latency vs the latency budget.

Each runtime measures memory its own way (see docs/target-profiles.md):
LiteRT — peak activations from the lifetime planner; TFLite Micro — the
arena it really allocates, plus margin and I/O; Ethos-U — Vela's SRAM use.
The latency budget is held to the *target* estimate (cost model, or Vela's
cycle estimate); the host measurement is reported beside it, never mixed.
"""

from __future__ import annotations

import tempfile

from edgepipe.checks import budget_check
from edgepipe.config.schema import Runtime
from edgepipe.pipeline.context import BuildContext
from edgepipe.tflite.memory import plan_memory


def run(ctx: BuildContext) -> None:
    from edgepipe.estimate.latency import estimate_latency, latency_check

    tfl, profile = ctx.tflite, ctx.profile
    plan = plan_memory(tfl)
    ctx.report.sections["memory"] = {"model_bytes": tfl.size, **plan.to_dict()}
    latency = {"host": _host_latency(ctx)} if _sample(ctx) is not None else {}
    if profile.runtime is Runtime.TFLM:
        _tflm(ctx)
        estimate = estimate_latency(tfl, profile)
    elif profile.runtime is Runtime.ETHOS_U:
        estimate = _ethos_u(ctx, estimate_latency)
    else:
        ctx.report.checks += [
            budget_check("flash", tfl.size, profile.memory.flash, "bytes", "measured:file", "model file"),
            budget_check("ram", plan.peak_bytes, profile.memory.ram, "bytes", "estimate:lifetime-planner",
                         "peak activation memory"),
        ]
        estimate = estimate_latency(tfl, profile)
    latency["target"] = estimate.to_dict()
    latency["budget_checked_against"] = estimate.source
    ctx.report.sections["latency"] = latency
    ctx.report.checks.append(latency_check(estimate, profile))


def _sample(ctx: BuildContext):
    data = ctx.inputs.eval or ctx.inputs.representative
    return None if data is None else data.x[:1]


def _host_latency(ctx: BuildContext) -> dict:
    from edgepipe.runtimes.litert import LiteRTRunner

    lat = LiteRTRunner(ctx.tflite_bytes, threads=ctx.profile.threads).latency(_sample(ctx))
    return lat.to_dict()


def _tflm(ctx: BuildContext) -> None:
    """TFLM compatibility, measured arena, RAM and flash."""
    from edgepipe.runtimes.tflm import tflm_checks

    with ctx.progress.task("measuring TFLM arena", 0):
        rep = tflm_checks(ctx.tflite_bytes, ctx.profile)
    ctx.report.checks += list(rep.checks)
    ctx.report.sections["tflm"] = rep.to_dict()
    ctx.arena_bytes = rep.arena_bytes_with_margin


def _ethos_u(ctx: BuildContext, estimate_latency):
    """Compile with Vela; its SRAM/flash/NPU figures become checks; its model an artifact."""
    from edgepipe.runtimes.vela import compile_vela, vela_checks

    with tempfile.TemporaryDirectory(prefix="edgepipe-vela-") as d:
        vela = compile_vela(ctx.tflite_bytes, ctx.profile, d, name="model")
        ctx.report.checks += list(vela_checks(vela, ctx.profile))
        ctx.report.sections["vela"] = {k: v for k, v in vela.to_dict().items()
                                       if k not in ("output_path", "summary_csv", "per_layer_csv", "log_path")}
        ctx.pending["model_vela.tflite"] = vela.output_path.read_bytes()
        if vela.per_layer_csv is not None:
            ctx.pending["model_vela_per-layer.csv"] = vela.per_layer_csv.read_bytes()
        return estimate_latency(ctx.tflite, ctx.profile, vela=vela)
