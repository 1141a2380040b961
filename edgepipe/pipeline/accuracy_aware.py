"""Accuracy-aware quantization: when the int8 model misses ``max_drop``, try what the target permits.

In order, stopping at the first model that meets the budget:

1. ``calibration``: all the representative samples (evenly spread) instead of a subset;
2. ``per-channel``: per-channel weight scales, if they were off;
3. ``fc-per-channel``: per-channel FULLY_CONNECTED weights, if the target's default made them
   per tensor (:mod:`edgepipe.quantize.granularity`);
4. ``equalize``: cross-layer equalization (``quantization.equalize: auto``);
5. ``bias-correction``: empirical bias correction (``quantization.bias_correction: auto``);
6. ``int16-layers``: the layer at fault (then the three worst) and the ops reading its output
   with 16-bit activations, the rest int8 (ai-edge-quantizer recipes), where the target's
   runtime has int16x8 kernels -- still a full-integer model, int8 I/O;
7. ``int16x8``: 16-bit activations everywhere (the converter) -- not on ``int8_only`` targets,
   refused (recorded, not converted) unless the I/O types stay those asked for;
8. ``float``: the layer at fault (then the three worst) and the ops reading its output left
   in float (ai-edge-quantizer recipes) -- only on targets that allow float.

Steps 1-5 keep the model int8; each is kept for the later steps only if it brought the
model closer to the float one (top-1 agreement, else the accuracy drop), otherwise reverted.
Steps 6-8 start from the best int8 candidate.

Every candidate is re-verified on the eval data with the runtime accuracy is
measured with for the target, and recorded in the report's
``quantization_attempts`` section (what changed, size, accuracy). If none meets
the budget the most accurate one is kept, the verify stage's accuracy check
fails (exit 1) and names the layers at fault. A candidate that breaks an
int8-only target, whose input/output types differ from those the profile and
project ask for (a contract with the application that feeds the model), or
(mixed precision) that the target's backend rejects (an op its runtime cannot
run, an NPU fallback), is never kept. Each attempt is one conversion in this
process (TF 2.21's converter leaks memory per call: a handful per build is fine).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from edgepipe.checks import Check
from edgepipe.config.schema import Scheme
from edgepipe.pipeline.context import BuildContext
from edgepipe.pipeline.evaluate import accuracy_check, eval_data, measure

ATTRIBUTION_SAMPLES = 128
BIAS_CORRECTION_SAMPLES = 256
_BUDGET_CHECKS = ("ram", "flash", "latency", "energy")


@dataclass(frozen=True)
class Candidate:
    """What a step converts: the Keras model (transformed or not), converter settings, calibration
    samples, and an ai-edge-quantizer recipe (None: the TFLite converter's own quantization)."""

    settings: object                 # keras_io.convert.ConvertSettings
    rep: np.ndarray
    model: object = field(default=None, repr=False, compare=False)
    recipe: object = None            # quantize.recipes.Recipe
    transforms: tuple[str, ...] = ()
    float_layers: tuple[str, ...] = ()
    int16_layers: tuple[str, ...] = ()

    @property
    def mixed(self) -> bool:
        return bool(self.float_layers or self.int16_layers)


@dataclass
class Attempt:
    step: str
    change: str
    candidate: Candidate
    tflite_bytes: bytes = b""
    check: Check | None = None
    acc: dict = field(default_factory=dict)
    error: str = ""
    run: object = None  # harness.device.DeviceRun

    @property
    def passed(self) -> bool:
        return self.check is not None and self.check.status == "pass"

    @property
    def drop(self) -> float:
        return self.acc.get("drop", float("inf")) if self.check is not None else float("inf")

    @property
    def closeness(self) -> tuple[float, float]:
        """Higher is closer to the float model: top-1 agreement if measured, else minus the drop;
        ties broken by the output SQNR against the float model."""
        if self.check is None:
            return float("-inf"), float("-inf")
        first = float(self.acc["agreement"]) if "agreement" in self.acc else -self.drop
        sqnr = (self.acc.get("output_error") or {}).get("sqnr_db")
        return first, float(sqnr) if sqnr is not None else float("-inf")

    def to_dict(self) -> dict:
        c = self.candidate
        out = {"step": self.step, "change": self.change, "settings": c.settings.to_dict(),
               "representative_samples": int(len(c.rep)), "float_layers": list(c.float_layers),
               "int16_layers": list(c.int16_layers), "transforms": list(c.transforms),
               "quantizer": "ai-edge-quantizer" if c.recipe is not None else "tflite-converter",
               "recipe": c.recipe.to_dict() if c.recipe is not None else None,
               "bytes": len(self.tflite_bytes) or None, "passed": self.passed}
        if self.check is not None:
            key = "top1" if self.acc["task"] == "classification" else "rmse"
            if "quantized" in self.acc:
                out[f"quantized_{key}"] = self.acc["quantized"][key]
            if "agreement" in self.acc:
                out["agreement"] = self.acc["agreement"]
            if (self.acc.get("output_error") or {}).get("sqnr_db") is not None:
                out["sqnr_db"] = self.acc["output_error"]["sqnr_db"]
            out.update({"drop": round(self.drop, 4),
                        "drop_unit": self.acc["drop_unit"], "detail": self.check.detail})
        if self.error:
            out["error"] = self.error
        return out


def run(ctx: BuildContext, out, start: Candidate | None = None, options=None) -> None:
    """Measure the converted model (``out.tflite``); if it misses the budget, try the permitted steps in turn.

    ``out`` is the quantize stage's :class:`~edgepipe.pipeline.outcome.StageOutcome`: a kept
    candidate replaces its model and settings; the attempts and notes go into it. The first
    measurement is the verify stage's too (``out.measured``): device kernels and cross-check.
    ``start`` is what ``out.tflite`` was made from (default: ``ctx.model``, the converter);
    ``options`` the :class:`~edgepipe.quantize.options.TechniqueOptions` (default: all ``auto``).
    """
    from edgepipe.quantize.options import TechniqueOptions

    data = eval_data(ctx)
    if data is None or out.settings.scheme not in (Scheme.INT8, Scheme.INT16X8):
        return
    base = start or Candidate(out.settings, ctx.inputs.representative.x, model=ctx.model)
    first = _measured(ctx, data, Attempt("as configured", "-", base, out.tflite), cross_check=True)
    if first.check is None:  # the device runtime cannot run it: the verify stage says so
        return
    attempts, fault = [first], []
    if not first.passed:
        fault = _layers_at_fault(ctx, data, out.tflite)  # [] if attribution could not run
        attempts += _repair(ctx, data, first, fault, options or TechniqueOptions())
    chosen = next((a for a in attempts if a.passed), None) or min(
        (a for a in attempts if a.check is not None), key=lambda a: a.drop)
    out.measured = first.run if chosen is first else None
    if chosen is not first:
        c = chosen.candidate
        out.tflite, out.settings = chosen.tflite_bytes, c.settings
        out.sections["quantization"] = {
            **out.sections.get("quantization", {}), **c.settings.to_dict(), "float_layers": list(c.float_layers),
            "int16_layers": list(c.int16_layers), "transforms": list(c.transforms),
            "quantizer": "ai-edge-quantizer" if c.recipe is not None else "tflite-converter",
            "recipe": c.recipe.to_dict() if c.recipe is not None else None}
    out.sections["quantization_attempts"] = _attempts_section(ctx, attempts, chosen, fault)
    notes = _notes(ctx, attempts, chosen, fault)
    out.notes += notes
    for note in notes:
        ctx.progress.note(note)


def _repair(ctx: BuildContext, data, first: Attempt, fault: list[str], options) -> list[Attempt]:
    """Try the steps in order; int8 steps that do not bring the model closer are reverted."""
    attempts, best = [], first
    for step, int8, make in _steps(ctx, fault, options):
        made = make(best.candidate)
        if made is None:
            continue
        change, cand = made
        attempt = _try(ctx, data, Attempt(step, change, cand), ctx.io_contract)
        attempts.append(attempt)
        if attempt.passed:
            break
        if int8 and attempt.closeness > best.closeness:
            best = attempt
    return attempts


def _steps(ctx: BuildContext, fault: list[str], options):
    """(step, keeps int8, make(best int8 candidate) -> (change, candidate) or None), in order."""
    from edgepipe.quantize.granularity import int16_layers_allowed

    profile = ctx.profile
    yield "calibration", True, lambda c: _all_samples(ctx, c)
    yield "per-channel", True, lambda c: None if c.settings.per_channel else (
        "per-channel weight scales (were per-tensor)",
        dataclasses.replace(c, settings=dataclasses.replace(c.settings, per_channel=True)))
    yield "fc-per-channel", True, lambda c: None if c.recipe is None or not c.recipe.per_tensor_ops else (
        "per-channel FULLY_CONNECTED weights (were per-tensor), the TFLite converter",
        dataclasses.replace(c, recipe=None))
    if options.equalize == "auto":
        yield "equalize", True, _equalized
    if options.bias_correction == "auto":
        yield "bias-correction", True, _bias_corrected
    int8 = ctx.settings.scheme is Scheme.INT8  # per-layer recipes start from an int8 model
    if fault and int8 and int16_layers_allowed(profile)[0]:
        for layers in dict.fromkeys((tuple(fault[:1]), tuple(fault[:3]))):
            yield "int16-layers", False, lambda c, layers=layers: _mixed(ctx, c, layers, "int16")
    if not profile.accelerator.int8_only and int8:
        yield "int16x8", False, lambda c: _int16x8_candidate(ctx, c)
    if ctx.settings.allow_float_fallback and fault and int8:
        for layers in dict.fromkeys((tuple(fault[:1]), tuple(fault[:3]))):
            yield "float", False, lambda c, layers=layers: _mixed(ctx, c, layers, "float")


def _all_samples(ctx: BuildContext, c: Candidate):
    from edgepipe.pipeline.inputs import load_split

    held_out = ctx.inputs.eval is not None and ctx.inputs.eval.held_out  # calibrating on them would grade itself
    if held_out:
        return None
    full = load_split(ctx.project, "representative", ctx.inputs.io, labelled=False)
    if full is None or len(full.x) <= len(c.rep):
        return None
    change = f"calibrate on all {len(full.x)} representative samples (was {len(c.rep)})"
    return change, dataclasses.replace(c, rep=full.x)


def _equalized(c: Candidate):
    from edgepipe.quantize.equalize import equalize

    if "equalize" in c.transforms:
        return None
    model, pairs = equalize(c.model)
    if not pairs:
        return None
    names = ", ".join(f"{p.first}->{p.second}" if p.first != p.second else p.first for p in pairs[:4])
    more = f" and {len(pairs) - 4} more" if len(pairs) > 4 else ""
    return (f"cross-layer equalization of {len(pairs)} pair(s): {names}{more}",
            dataclasses.replace(c, model=model, transforms=(*c.transforms, "equalize")))


def _bias_corrected(c: Candidate):
    from edgepipe.quantize.bias_correction import correct_biases

    if "bias-correction" in c.transforms or not isinstance(c.rep, np.ndarray):
        return None
    step = max(1, len(c.rep) // BIAS_CORRECTION_SAMPLES)
    per_tensor = c.recipe is not None and "FULLY_CONNECTED" in c.recipe.per_tensor_ops
    model, layers = correct_biases(c.model, c.rep[::step], per_tensor_dense=per_tensor,
                                   per_tensor=not c.settings.per_channel)
    if not layers:
        return None
    return (f"bias correction of {len(layers)} layer(s) from {len(c.rep[::step])} representative samples",
            dataclasses.replace(c, model=model, transforms=(*c.transforms, "bias-correction")))


def _mixed(ctx: BuildContext, c: Candidate, layers: tuple[str, ...], precision: str):
    """``layers`` and the ops reading their outputs at ``precision``, the rest as ``c`` has it."""
    from edgepipe.quantize.recipes import Recipe, layer_scopes

    scopes = layer_scopes(c.model, layers)
    if not scopes:
        return None
    base = c.recipe or Recipe()
    recipe = Recipe(base.per_tensor_ops, {**base.layers, **{s: precision for s in scopes}})
    kind = "16-bit activations (8-bit weights)" if precision == "int16" else "float"
    field_name = "int16_layers" if precision == "int16" else "float_layers"
    return (f"keep {', '.join(layers)} (and the ops reading it) in {kind}, the rest int8",
            dataclasses.replace(c, recipe=recipe, **{field_name: layers}))


def _int16x8_candidate(ctx: BuildContext, c: Candidate):
    wide = _int16x8(ctx, c.settings)
    return (f"16-bit activations, 8-bit weights (whole model), {wide.input_dtype.value} input, "
            f"{wide.output_dtype.value} output", dataclasses.replace(c, settings=wide, recipe=None))


def _int16x8(ctx: BuildContext, s):
    """The settings the project would get asking for int16x8: int8/uint8 I/O become int16
    (the converter allows int16x8 no other integer I/O), which :func:`_try` then refuses."""
    from edgepipe.pipeline.settings import convert_settings

    q = ctx.project.quantization.model_copy(update={"scheme": Scheme.INT16X8, "per_channel": s.per_channel})
    return convert_settings(ctx.profile, ctx.project.model_copy(update={"quantization": q}))


def _attempts_section(ctx: BuildContext, attempts: list[Attempt], chosen: Attempt, fault: list[str]) -> dict:
    rule = ctx.profile.accuracy
    return {"budget": {"max_drop": rule.max_drop, "drop_mode": rule.drop_mode,
                       "max_rmse_increase": rule.max_rmse_increase},
            "measured_with": attempts[0].acc["runtime"]["name"], "passed": chosen.passed,
            "chosen": attempts.index(chosen), "attempts": [a.to_dict() for a in attempts], "layers_at_fault": fault}


def _notes(ctx: BuildContext, attempts: list[Attempt], chosen: Attempt, fault: list[str]) -> list[str]:
    if len(attempts) > 1:
        verdict = "meets" if chosen.passed else "still misses"
        return [f"the quantized model missed the accuracy budget; after {len(attempts) - 1} attempt(s) the kept "
                f"model ({chosen.step}) {verdict} it: {chosen.check.detail}"]
    if not chosen.passed:
        return ["the quantized model misses the accuracy budget and this target permits no other quantization "
                f"(int8_only: {ctx.profile.accelerator.int8_only}); layers at fault: {', '.join(fault) or '?'}"]
    return []


def _try(ctx: BuildContext, data, attempt: Attempt, contract) -> Attempt:
    """Convert the candidate, refuse it if it breaks an int8-only target, the I/O types of
    ``contract`` (the :class:`~edgepipe.backends.IOContract` of the build) or (mixed precision)
    the target's backend, then measure it."""
    from edgepipe.errors import EdgepipeError
    from edgepipe.tflite import rules
    from edgepipe.tflite.model import parse_tflite

    c = attempt.candidate
    asked = (contract.input_dtype, contract.output_dtype)
    would = (c.settings.input_dtype.value, c.settings.output_dtype.value)
    if would != asked:
        attempt.error = (f"refused: it would make the model's input/output {'/'.join(would)}; the build asks for "
                         f"{'/'.join(asked)} (quantization.input_dtype/output_dtype)")
        return attempt
    try:
        with ctx.progress.task(f"quantize: {attempt.step}", len(c.rep)) as update:
            attempt.tflite_bytes = convert_candidate(ctx.model, c, lambda i: update(i + 1))
    except EdgepipeError as exc:
        attempt.error = str(exc)
        return attempt
    tfl = parse_tflite(attempt.tflite_bytes)
    if ctx.profile.accelerator.int8_only:
        guard = rules.int8_only_check(tfl)
        if not guard.passed:
            attempt.error = f"refused: breaks the int8-only target ({guard.detail})"
            return attempt
    io = rules.io_dtype_check(tfl, *asked)
    if not io.passed:
        attempt.error = f"refused: {io.detail}"
        return attempt
    if c.mixed:
        rejected = _backend_refusal(ctx, tfl, contract)
        if rejected:
            attempt.error = f"refused: the {ctx.profile.runtime.value} backend rejects it ({rejected})"
            return attempt
    return _measured(ctx, data, attempt)


def _backend_refusal(ctx: BuildContext, tfl, contract) -> str:
    """The target backend's failed rule checks (budgets aside: the check stage holds those)."""
    from edgepipe.backends import backend_for

    judged = backend_for(ctx.profile).judge(tfl, contract)
    failed = [c for c in judged.checks if c.status == "fail" and c.name not in _BUDGET_CHECKS]
    return "; ".join(f"{c.name}: {c.detail}" for c in failed)


def _measured(ctx: BuildContext, data, attempt: Attempt, cross_check: bool = False) -> Attempt:
    """The attempt measured on the device's runner; a runtime failure is the attempt's error."""
    attempt.run = measure(ctx, data, attempt.tflite_bytes, f"verifying: {attempt.step}", cross_check)
    if attempt.run.acc is None:
        attempt.error = attempt.run.failure
        return attempt
    attempt.acc = attempt.run.acc
    attempt.check = accuracy_check(attempt.acc, ctx.profile.accuracy, attempt.run.source)
    return attempt


def convert_candidate(model, c: Candidate, on_sample=None) -> bytes:
    """The candidate's ``.tflite``: ai-edge-quantizer with its recipe, else the TFLite converter.

    ``model`` is used when the candidate carries no (transformed) model of its own."""
    from edgepipe.keras_io.convert import convert
    from edgepipe.quantize.recipes import convert_with_recipe

    source = c.model if c.model is not None else model
    if c.recipe is not None:
        return convert_with_recipe(source, c.rep, c.settings, c.recipe, on_sample)
    return convert(source, c.rep, c.settings, on_sample=on_sample)


def _layers_at_fault(ctx: BuildContext, data, tflite_bytes: bytes) -> list[str]:
    """The worst layers by local error on the first model (attribution against the float model)."""
    from edgepipe.harness.attribution import attribute
    from edgepipe.runtimes.isolated import RuntimeFailure

    if not ctx.inputs.io.single:  # per-layer attribution walks one input to one output
        return []
    try:
        attr = attribute(ctx.model, tflite_bytes, data.take(ATTRIBUTION_SAMPLES))
    except RuntimeFailure:  # the reference kernels crashed on it: the other steps still run
        return []
    return [e.layer for e in attr.blamed()[1] if e.kind != "InputLayer"]
