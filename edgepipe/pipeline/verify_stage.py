"""The converted model on the eval data, with the kernels the device runs.

Three levels go into the report's ``accuracy`` section: the float model vs
the labels, the quantized model vs the float one (per output), and the
device runtime vs the host reference (in LSBs, a ``runtime_lsb_diff``
check). Per-layer quantization error, keyed by Keras layer name, goes into
``layer_errors`` and a plot, ``layer_errors.png``. See docs/verification.md.
"""

from __future__ import annotations

import dataclasses

from edgepipe.checks import Check
from edgepipe.pipeline.context import BuildContext

REFERENCE_SAMPLES = 1000   # cap for the second runtime of the cross-check (evenly spread)
PER_OP_SAMPLES = 16
ATTRIBUTION_SAMPLES = 128
PLOT = "layer_errors.png"


def run(ctx: BuildContext) -> None:
    from edgepipe.pipeline.evaluate import accuracy_check, eval_data, measure
    from edgepipe.runtimes.base import plan_for
    from edgepipe.harness import crosscheck

    profile, data = ctx.profile, eval_data(ctx)
    if data is None:
        ctx.report.checks += [accuracy_check(None, profile.accuracy),
                              crosscheck.skipped("no eval data: runtimes were not cross-checked")]
        return
    plan = plan_for(profile)
    reference, why = _reference(plan.reference, ctx.tflite_bytes)
    acc, runner = measure(ctx, data, ctx.tflite_bytes, plan.device, "evaluating", reference, REFERENCE_SAMPLES)
    acc["runtime"].update(plan.to_dict())
    attribution = _attribution(ctx, data)
    check = accuracy_check(acc, profile.accuracy, f"measured:{runner.name}")
    if not check.passed and attribution is not None and attribution.layers:
        label, layers = attribution.blamed()
        worst = "; ".join(e.summary() for e in layers)
        check = dataclasses.replace(check, detail=f"{check.detail}; {label}: {worst}")
    ctx.report.checks += [check, _cross_check(ctx, plan, acc, data, runner, reference, why)]
    ctx.report.sections["accuracy"] = acc


def _reference(name: str, model_bytes: bytes):
    """(the cross-check's reference runner, "") or (None, why it cannot run the model)."""
    from edgepipe.errors import EdgepipeError
    from edgepipe.pipeline.evaluate import first_line
    from edgepipe.runtimes.base import make_runner

    try:  # TFLM loads the model in a child process first: a model it cannot run is an error, not a crash
        return make_runner(name, model_bytes), ""
    except (EdgepipeError, RuntimeError, ValueError) as exc:
        return None, first_line(exc)


def _cross_check(ctx: BuildContext, plan, acc: dict, data, runner, reference, why: str) -> Check:
    from edgepipe.tflite.model import parse_tflite
    from edgepipe.harness import crosscheck

    budget = ctx.profile.accuracy.max_lsb_diff
    if runner.name != plan.device:
        return Check(crosscheck.NAME, "fail", None, budget, "LSB",
                     f"the device runtime: {acc['runtime']['fallback']}",
                     f"measured:{plan.device}")
    if reference is None:
        return crosscheck.skipped(f"{plan.reference} cannot run the model, so it was not cross-checked: {why}")
    if any(t.dtype.startswith("float") for t in ctx.tflite.output_tensors):
        return crosscheck.skipped("float outputs: no LSBs to compare (see accuracy.outputs[].device_vs_reference)")
    cross = acc["cross_check"]
    cross.update({"device": runner.name, "reference": reference.name})
    per_op = None
    if cross["max_lsb"] > budget:
        arena = next((r.arena_bytes for r in (runner, reference) if hasattr(r, "arena_bytes")), 1 << 20)
        samples = data.at(cross["worst_samples"][:PER_OP_SAMPLES])  # the samples whose outputs differ most
        per_op = crosscheck.per_op_lsb(ctx.tflite_bytes, parse_tflite(ctx.tflite_bytes), samples,
                                       (runner.name, reference.name), arena)
        cross["per_op"] = per_op
    return crosscheck.lsb_check(cross, budget, per_op)


def _attribution(ctx: BuildContext, data):
    """Per-layer errors into the report and a plot into the output folder (None if attribution failed)."""
    from edgepipe.pipeline import emit_stage
    from edgepipe.harness.attribution import attribute, plot

    try:
        attr = attribute(ctx.model, ctx.tflite_bytes, data.take(ATTRIBUTION_SAMPLES))
    except Exception as exc:  # noqa: BLE001 - a diagnostic: it must not stop a build that verified
        ctx.report.sections["layer_errors"] = {"note": f"per-layer attribution failed: {type(exc).__name__}: {exc}"}
        return None
    ctx.report.sections["layer_errors"] = attr.to_dict()
    if attr.layers:
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        title = f"{ctx.model.name} for {ctx.profile.name}: per-layer quantization error ({attr.samples} samples)"
        emit_stage.add(ctx, PLOT, plot(attr, ctx.out_dir / PLOT, title))
    return attr
