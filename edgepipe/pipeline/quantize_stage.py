"""Quantize and convert the model with the target's settings.

With eval data, the converted model is measured at once on the device's
kernels and, if it misses the accuracy budget,
:mod:`edgepipe.pipeline.accuracy_aware` tries what the target permits; that
first measurement is handed to the verify stage (``StageOutcome.measured``),
so a model that meets its budget is evaluated once.
"""

from __future__ import annotations

from edgepipe.config.schema import Scheme
from edgepipe.pipeline import accuracy_aware
from edgepipe.pipeline.context import BuildContext
from edgepipe.pipeline.outcome import StageOutcome
from edgepipe.tflite.model import parse_tflite


def run(ctx: BuildContext) -> StageOutcome:
    from edgepipe.keras_io.convert import convert

    rep = ctx.inputs.representative.x if ctx.inputs.representative is not None else None
    full_int = ctx.settings.scheme in (Scheme.INT8, Scheme.INT16X8)
    total = len(rep) if rep is not None and full_int else 0
    with ctx.progress.task("calibrating", total) as update:
        tflite = convert(ctx.model, rep, ctx.settings, on_sample=lambda i: update(i + 1))
    out = StageOutcome(sections={"quantization": ctx.settings.to_dict()}, tflite=tflite, settings=ctx.settings)
    accuracy_aware.run(ctx, out)
    out.sections["model"] = model_section(ctx.model, parse_tflite(out.tflite, "converted model"))
    return out


def model_section(model, tfl) -> dict:
    return {
        "keras_name": model.name, "params": int(model.count_params()),
        "tflite_bytes": tfl.size, "weight_bytes": tfl.weight_bytes, "sha256": tfl.sha256,
        "ops": tfl.op_counts, "tensors": len(tfl.tensors),
        "inputs": [t.to_dict() for t in tfl.input_tensors],
        "outputs": [t.to_dict() for t in tfl.output_tensors],
    }
