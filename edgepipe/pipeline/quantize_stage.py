"""Quantize and convert the model with the target's settings.

Before converting, the techniques the project turns ``on`` are applied to a copy
of the float model (cross-layer equalization, bias correction: see
:mod:`edgepipe.quantize`); ``auto`` ones are left to the accuracy-aware loop.
FULLY_CONNECTED weights are per tensor where the target's runtime pays for
per-channel data (:mod:`edgepipe.quantize.granularity`), made with
ai-edge-quantizer; the bytes and TFLite Micro arena of both choices go into
the report.

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
    from edgepipe.quantize.options import technique_options

    options = technique_options(ctx.profile, ctx.project)
    rep = ctx.inputs.representative.x if ctx.inputs.representative is not None else None
    full_int = ctx.settings.scheme in (Scheme.INT8, Scheme.INT16X8)
    model, section = _prepared(ctx, options, rep) if full_int else (ctx.model, {})
    total = len(rep) if rep is not None and full_int else 0
    with ctx.progress.task("calibrating", total) as update:
        tflite = convert(model, rep, ctx.settings, on_sample=lambda i: update(i + 1))
    start = accuracy_aware.Candidate(ctx.settings, rep, model=model, transforms=tuple(section.get("transforms", [])))
    if full_int:
        tflite, start, section["fc_weights"] = _fc_granularity(ctx, options, start, tflite)
    out = StageOutcome(sections={"quantization": {**ctx.settings.to_dict(), **section,
                                                  "quantizer": _quantizer(start),
                                                  "recipe": start.recipe.to_dict() if start.recipe else None}},
                       tflite=tflite, settings=ctx.settings)
    accuracy_aware.run(ctx, out, start, options)
    out.sections["model"] = model_section(ctx.model, parse_tflite(out.tflite, "converted model"))
    return out


def _quantizer(c) -> str:
    return "ai-edge-quantizer" if c.recipe is not None else "tflite-converter"


def _prepared(ctx: BuildContext, options, rep) -> tuple[object, dict]:
    """The model to convert (``on`` techniques applied to a copy) and the report's record of them."""
    from edgepipe.quantize.bias_correction import correct_biases
    from edgepipe.quantize.equalize import equalize

    model, section, transforms = ctx.model, {"techniques": options.to_dict()}, []
    if options.equalize == "on":
        model, pairs = equalize(model)
        section["equalize"] = {"setting": "on", "pairs": [p.to_dict() for p in pairs]}
        transforms += ["equalize"] if pairs else []
    if options.bias_correction == "on" and rep is not None and hasattr(rep, "shape"):
        step = max(1, len(rep) // accuracy_aware.BIAS_CORRECTION_SAMPLES)
        model, layers = correct_biases(model, rep[::step], per_tensor=not ctx.settings.per_channel)
        section["bias_correction"] = {"setting": "on", "layers": layers, "samples": len(rep[::step])}
        transforms += ["bias-correction"] if layers else []
    section["transforms"] = transforms
    return model, section


def _fc_granularity(ctx: BuildContext, options, start, tflite: bytes):
    """Per-tensor FULLY_CONNECTED weights where the target pays for per-channel: (bytes, start, record)."""
    import dataclasses

    from edgepipe.errors import EdgepipeError
    from edgepipe.quantize.granularity import fc_per_tensor
    from edgepipe.quantize.recipes import Recipe, convert_with_recipe, io_refusal

    wanted, why = fc_per_tensor(ctx.profile, options.fc_weights)
    record = {"setting": options.fc_weights, "why": why, "chosen": "per-channel" if ctx.settings.per_channel
              else "per-tensor (quantization.per_channel: false)"}
    if not wanted or not ctx.settings.per_channel or "FULLY_CONNECTED" not in parse_tflite(tflite).op_counts:
        return tflite, start, record
    from edgepipe.pipeline.evaluate import eval_data

    refusal = io_refusal(ctx.settings) or (None if eval_data(ctx) is not None else
                                           "not measured: no eval data and no held-out representative samples")
    if refusal:
        return tflite, start, {**record, "not_used": refusal}
    recipe = Recipe(("FULLY_CONNECTED",))
    try:
        with ctx.progress.task("calibrating: per-tensor FULLY_CONNECTED weights", len(start.rep)) as update:
            alt = convert_with_recipe(start.model, start.rep, ctx.settings, recipe, lambda i: update(i + 1))
    except EdgepipeError as exc:
        return tflite, start, {**record, "not_used": str(exc)}
    cost = {"per-channel": _cost(tflite), "per-tensor": _cost(alt)}
    return alt, dataclasses.replace(start, recipe=recipe), {**record, "chosen": "per-tensor", "measured": cost}


def _cost(tflite: bytes) -> dict:
    """Bytes and the TFLite Micro arena (None if TFLM cannot run it) of one conversion."""
    from edgepipe.runtimes.tflm import TflmError, measure_arena

    try:
        arena = measure_arena(tflite).bytes
    except TflmError:
        arena = None
    return {"bytes": len(tflite), "tflm_arena_bytes": arena}


def model_section(model, tfl) -> dict:
    return {
        "keras_name": model.name, "params": int(model.count_params()),
        "tflite_bytes": tfl.size, "weight_bytes": tfl.weight_bytes, "sha256": tfl.sha256,
        "ops": tfl.op_counts, "tensors": len(tfl.tensors),
        "inputs": [t.to_dict() for t in tfl.input_tensors],
        "outputs": [t.to_dict() for t in tfl.output_tensors],
    }
