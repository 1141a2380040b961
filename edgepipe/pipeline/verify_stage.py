"""The converted model on the eval data, with the kernels the device runs.

Three levels go into the report's ``accuracy`` section: the float model vs
the labels, the quantized model vs the float one (per output), and the
device runtime vs the host reference (``runtime_lsb_diff`` per kernel,
``runtime_agreement`` end to end). The runtimes are the backend's plan and the
measurement is :func:`edgepipe.harness.device.run_on_device` — the same one
``edgepipe verify`` uses. Per-layer quantization error, keyed by Keras layer
name, goes into ``layer_errors`` and a plot, ``layer_errors.png``. See
docs/verification.md.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from edgepipe.pipeline.context import BuildContext

ATTRIBUTION_SAMPLES = 128
PLOT = "layer_errors.png"


def run(ctx: BuildContext) -> None:
    from edgepipe.backends import backend_for
    from edgepipe.harness import crosscheck
    from edgepipe.harness.device import run_on_device
    from edgepipe.harness.harness import float_outputs
    from edgepipe.pipeline.evaluate import accuracy_check, eval_data

    profile, data = ctx.profile, eval_data(ctx)
    if data is None:
        reason = "no eval data: runtimes were not cross-checked"
        ctx.report.checks += [accuracy_check(None, profile.accuracy), crosscheck.skipped(reason),
                              crosscheck.skipped(reason, crosscheck.AGREEMENT)]
        return
    arena = ctx.judgement.runner_arena if ctx.judgement is not None else None
    run = run_on_device(ctx.tflite, data, backend_for(profile).plan, profile, float_fn=float_outputs(ctx.model, data),
                        arena=arena, progress=ctx.progress)
    if run.acc is None:
        ctx.report.checks += [run.not_measured(), crosscheck.skipped(f"not cross-checked: {run.failure}"),
                              crosscheck.skipped(f"not cross-checked: {run.failure}", crosscheck.AGREEMENT)]
        return
    check = accuracy_check(run.acc, profile.accuracy, run.source)
    attribution = _attribution(ctx, data)
    if not check.passed and attribution is not None and attribution.layers:
        label, layers = attribution.blamed()
        worst = "; ".join(e.summary() for e in layers)
        check = dataclasses.replace(check, detail=f"{check.detail}; {label}: {worst}")
    ctx.report.checks += [check, *run.cross]
    ctx.report.sections["accuracy"] = run.acc


def _attribution(ctx: BuildContext, data):
    """Per-layer errors into the report and a plot into the output folder (None if attribution failed)."""
    from edgepipe.harness.attribution import attribute, plot

    try:
        attr = attribute(ctx.model, ctx.tflite_bytes, data.take(ATTRIBUTION_SAMPLES))
    except Exception as exc:  # noqa: BLE001 - a diagnostic: it must not stop a build that verified
        ctx.report.sections["layer_errors"] = {"note": f"per-layer attribution failed: {type(exc).__name__}: {exc}"}
        return None
    ctx.report.sections["layer_errors"] = attr.to_dict()
    if attr.layers:
        title = f"{ctx.model.name} for {ctx.profile.name}: per-layer quantization error ({attr.samples} samples)"
        with tempfile.TemporaryDirectory(prefix="edgepipe-plot-") as d:  # written with the other artifacts
            ctx.pending[PLOT] = plot(attr, Path(d) / PLOT, title).read_bytes()
    return attr
