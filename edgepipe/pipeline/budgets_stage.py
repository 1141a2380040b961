"""Budgets: model bytes vs flash, working memory vs RAM, latency vs the latency budget."""

from __future__ import annotations

from edgepipe.checks import budget_check
from edgepipe.pipeline.context import BuildContext
from edgepipe.tflite.memory import plan_memory


def run(ctx: BuildContext) -> None:
    from edgepipe.runtimes.litert import LiteRTRunner

    tfl, profile, report = ctx.tflite, ctx.profile, ctx.report
    plan = plan_memory(tfl)
    report.sections["memory"] = {"model_bytes": tfl.size, **plan.to_dict()}
    report.checks += [
        budget_check("flash", tfl.size, profile.memory.flash, "bytes", "file", "model file"),
        budget_check("ram", plan.peak_bytes, profile.memory.ram, "bytes", "estimate:lifetime-planner",
                     "peak activation memory"),
    ]
    data = ctx.inputs.eval or ctx.inputs.representative
    if data is not None:
        lat = LiteRTRunner(ctx.tflite_bytes, threads=profile.threads).latency(data.x[:1])
        report.sections["latency"] = {"host": lat.to_dict()}
        report.checks.append(budget_check("latency", lat.median_s, profile.latency, "s", lat.source,
                                          f"host-measured median latency ({lat.threads} threads)"))
