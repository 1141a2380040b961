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
from edgepipe.pipeline.outcome import StageOutcome

ATTRIBUTION_SAMPLES = 128
PLOT = "layer_errors.png"


def run(ctx: BuildContext) -> StageOutcome:
    from edgepipe.harness.device import without_data
    from edgepipe.pipeline.evaluate import accuracy_check, eval_data, measure

    profile, data = ctx.profile, eval_data(ctx)
    if data is None:
        return StageOutcome(checks=without_data(accuracy_check(None, profile.accuracy)))
    run = ctx.measured  # the quantize stage measured this very model already
    if run is None or run.sha256 != ctx.tflite.sha256 or not run.cross:
        run = measure(ctx, data, ctx.tflite_bytes, "evaluating", cross_check=True)
    if run.acc is None:
        return StageOutcome(checks=run.not_measured())
    out = StageOutcome(sections={"accuracy": run.acc})
    check = accuracy_check(run.acc, profile.accuracy, run.source)
    attribution = _attribution(ctx, data, out)
    if not check.passed and attribution is not None and attribution.layers:
        label, layers = attribution.blamed()
        worst = "; ".join(e.summary() for e in layers)
        check = dataclasses.replace(check, detail=f"{check.detail}; {label}: {worst}")
    out.checks += [check, *run.cross]
    return out


def _attribution(ctx: BuildContext, data, out: StageOutcome):
    """Per-layer errors into the report and a plot for the output folder (None if attribution failed)."""
    from edgepipe.harness.attribution import attribute, plot

    if not ctx.inputs.io.single:
        out.sections["layer_errors"] = {"note": "per-layer attribution covers one-input, one-output models; "
                                                "see accuracy.outputs for each output's error"}
        return None
    try:
        attr = attribute(ctx.model, ctx.tflite_bytes, data.take(ATTRIBUTION_SAMPLES))
    except Exception as exc:  # noqa: BLE001 - a diagnostic: it must not stop a build that verified
        out.sections["layer_errors"] = {"note": f"per-layer attribution failed: {type(exc).__name__}: {exc}"}
        return None
    out.sections["layer_errors"] = attr.to_dict()
    if attr.layers:
        title = f"{ctx.model.name} for {ctx.profile.name}: per-layer quantization error ({attr.samples} samples)"
        with tempfile.TemporaryDirectory(prefix="edgepipe-plot-") as d:  # written with the other artifacts
            out.files[PLOT] = plot(attr, Path(d) / PLOT, title).read_bytes()
    return attr
