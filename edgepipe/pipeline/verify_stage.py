"""Float model and quantized model side by side on the eval data."""

from __future__ import annotations

from edgepipe.pipeline.context import BuildContext


def run(ctx: BuildContext) -> None:
    from edgepipe.pipeline.evaluate import accuracy_check, compare, predict_keras, predict_tflite
    from edgepipe.runtimes.litert import LiteRTRunner

    profile, ev = ctx.profile, ctx.inputs.eval
    if ev is None:
        ctx.report.checks.append(accuracy_check(None, profile.accuracy))
        return
    float_out = predict_keras(ctx.model, ev.x)
    runner = LiteRTRunner(ctx.tflite_bytes, threads=profile.threads, kernels="xnnpack")
    quant_out = predict_tflite(runner, ev.x, ctx.progress, "evaluating")
    acc = compare(ctx.project.task, ev.y, float_out, quant_out, ctx.inputs.n_outputs)
    acc["runtime"] = {"name": "litert", "kernels": "xnnpack", "threads": profile.threads,
                      "batched": runner.batched}
    ctx.report.checks.append(accuracy_check(acc, profile.accuracy))
    ctx.report.sections["accuracy"] = acc
