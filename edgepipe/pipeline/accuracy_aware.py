"""Accuracy-aware quantization: when the int8 model misses ``max_drop``, try what the target permits.

In order, each step keeping what the ones before it changed, and stopping at
the first model that meets the budget:

1. ``calibration``: all the representative samples (evenly spread) instead of a subset;
2. ``per-channel``: per-channel weight scales, if they were off;
3. ``int16x8``: 16-bit activations, 8-bit weights (whole model; the converter cannot mix
   per layer) -- not on ``int8_only`` targets, and refused (recorded, not converted) unless
   the I/O types stay those asked for: the converter gives int16x8 models int16 or float32
   I/O only (asked for int8 it refuses, and its older quantizer silently makes them int16);
4. ``float``: the worst layer (then the three worst), and the ops reading its output,
   left in float -- only on targets that allow float (``int8_only: false``).

Every candidate is re-verified on the eval data with the runtime accuracy is
measured with for the target, and recorded in the report's
``quantization_attempts`` section (what changed, size, accuracy). If none meets
the budget the most accurate one is kept, the verify stage's accuracy check
fails (exit 1) and names the layers at fault. A candidate that breaks an
int8-only target, or whose input/output types differ from those the profile
and project ask for (a contract with the application that feeds the model),
is never kept. Each attempt is one conversion in this process (TF 2.21's
converter leaks memory per call: a handful per build is fine).
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


@dataclass(frozen=True)
class Candidate:
    """What a step converts with: settings, calibration samples, layers kept in float."""

    settings: object                 # keras_io.convert.ConvertSettings
    rep: np.ndarray
    float_layers: tuple[str, ...] = ()
    float_nodes: tuple[str, ...] = ()


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

    def to_dict(self) -> dict:
        c = self.candidate
        out = {"step": self.step, "change": self.change, "settings": c.settings.to_dict(),
               "representative_samples": int(len(c.rep)), "float_layers": list(c.float_layers),
               "bytes": len(self.tflite_bytes) or None, "passed": self.passed}
        if self.check is not None:
            key = "top1" if self.acc["task"] == "classification" else "rmse"
            if "quantized" in self.acc:
                out[f"quantized_{key}"] = self.acc["quantized"][key]
            out.update({"drop": round(self.drop, 4),
                        "drop_unit": self.acc["drop_unit"], "detail": self.check.detail})
        if self.error:
            out["error"] = self.error
        return out


def run(ctx: BuildContext, out) -> None:
    """Measure the converted model (``out.tflite``); if it misses the budget, try the permitted steps in turn.

    ``out`` is the quantize stage's :class:`~edgepipe.pipeline.outcome.StageOutcome`: a kept
    candidate replaces its model and settings; the attempts and notes go into it. The first
    measurement is the verify stage's too (``out.measured``): device kernels and cross-check.
    """
    data = eval_data(ctx)
    if data is None or out.settings.scheme not in (Scheme.INT8, Scheme.INT16X8):
        return
    base = Candidate(out.settings, ctx.inputs.representative.x)
    first = _measured(ctx, data, Attempt("as configured", "-", base, out.tflite), cross_check=True)
    if first.check is None:  # the device runtime cannot run it: the verify stage says so
        return
    attempts, fault = [first], []
    if not first.passed:
        fault, nodes = _layers_at_fault(ctx, data, out.tflite)  # ([], {}) if attribution could not run
        for step, change, cand in _steps(ctx, base, fault, nodes):
            attempt = _try(ctx, data, Attempt(step, change, cand), ctx.io_contract)
            attempts.append(attempt)
            if attempt.passed:
                break
    chosen = next((a for a in attempts if a.passed), None) or min(
        (a for a in attempts if a.check is not None), key=lambda a: a.drop)
    out.measured = first.run if chosen is first else None
    if chosen is not first:
        out.tflite, out.settings = chosen.tflite_bytes, chosen.candidate.settings
        out.sections["quantization"] = {**out.settings.to_dict(), "float_layers": list(chosen.candidate.float_layers)}
    out.sections["quantization_attempts"] = _attempts_section(ctx, attempts, chosen, fault)
    notes = _notes(ctx, attempts, chosen, fault)
    out.notes += notes
    for note in notes:
        ctx.progress.note(note)


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


def _steps(ctx: BuildContext, base: Candidate, fault: list[str], nodes: dict[str, list[str]]):
    """(step, change, candidate) in order, each building on the previous int8 one."""
    from edgepipe.pipeline.inputs import load_split

    profile, s = ctx.profile, base.settings
    full = load_split(ctx.project, "representative", ctx.inputs.io, labelled=False)
    cur = base
    held_out = ctx.inputs.eval is not None and ctx.inputs.eval.held_out  # calibrating on them would grade itself
    if full is not None and len(full.x) > len(base.rep) and not held_out:
        cur = dataclasses.replace(cur, rep=full.x)
        yield "calibration", f"calibrate on all {len(full.x)} representative samples (was {len(base.rep)})", cur
    if not s.per_channel:
        cur = dataclasses.replace(cur, settings=dataclasses.replace(cur.settings, per_channel=True))
        yield "per-channel", "per-channel weight scales (were per-tensor)", cur
    if profile.accelerator.int8_only or s.scheme is not Scheme.INT8:
        return
    wide = _int16x8(ctx, cur.settings)
    yield "int16x8", f"16-bit activations, 8-bit weights (whole model), {wide.input_dtype.value} input, " \
                     f"{wide.output_dtype.value} output", dataclasses.replace(cur, settings=wide)
    if s.allow_float_fallback and fault:
        for layers in dict.fromkeys((tuple(fault[:1]), tuple(fault[:3]))):
            picked = tuple(n for layer in layers for n in nodes.get(layer, []))
            if picked:
                yield "float", f"keep {', '.join(layers)} (and the ops reading it) in float", \
                    dataclasses.replace(cur, float_layers=layers, float_nodes=picked)


def _int16x8(ctx: BuildContext, s):
    """The settings the project would get asking for int16x8: int8/uint8 I/O become int16
    (the converter allows int16x8 no other integer I/O), which :func:`_try` then refuses."""
    from edgepipe.pipeline.settings import convert_settings

    q = ctx.project.quantization.model_copy(update={"scheme": Scheme.INT16X8, "per_channel": s.per_channel})
    return convert_settings(ctx.profile, ctx.project.model_copy(update={"quantization": q}))


def _try(ctx: BuildContext, data, attempt: Attempt, contract) -> Attempt:
    """Convert the candidate, refuse it if it breaks an int8-only target or the I/O types of
    ``contract`` (the :class:`~edgepipe.backends.IOContract` of the build), then measure it."""
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
            attempt.tflite_bytes = _convert(ctx.model, c, lambda i: update(i + 1))
    except EdgepipeError as exc:
        attempt.error = str(exc)
        return attempt
    if ctx.profile.accelerator.int8_only:
        guard = rules.int8_only_check(parse_tflite(attempt.tflite_bytes))
        if not guard.passed:
            attempt.error = f"refused: breaks the int8-only target ({guard.detail})"
            return attempt
    io = rules.io_dtype_check(parse_tflite(attempt.tflite_bytes), *asked)
    if not io.passed:
        attempt.error = f"refused: {io.detail}"
        return attempt
    return _measured(ctx, data, attempt)


def _measured(ctx: BuildContext, data, attempt: Attempt, cross_check: bool = False) -> Attempt:
    """The attempt measured on the device's runner; a runtime failure is the attempt's error."""
    attempt.run = measure(ctx, data, attempt.tflite_bytes, f"verifying: {attempt.step}", cross_check)
    if attempt.run.acc is None:
        attempt.error = attempt.run.failure
        return attempt
    attempt.acc = attempt.run.acc
    attempt.check = accuracy_check(attempt.acc, ctx.profile.accuracy, attempt.run.source)
    return attempt


def _convert(model, c: Candidate, on_sample) -> bytes:
    from edgepipe.deadline import give_up_after, limit
    from edgepipe.keras_io.convert import convert

    if not c.float_nodes:
        return convert(model, c.rep, c.settings, on_sample=on_sample)
    with give_up_after(limit(), "the TFLite converter"):
        return convert_with_float_nodes(model, c.rep, c.settings, list(c.float_nodes), on_sample)


def convert_with_float_nodes(model, rep: np.ndarray, settings, nodes: list[str], on_sample=None) -> bytes:
    """Full-integer conversion with the ops writing ``nodes`` (TFLite tensor names) kept in float.

    Calibrates once (``_experimental_calibrate_only``), then quantizes with the
    MLIR quantizer's node denylist, keeping the requested integer I/O types (the
    QuantizationDebugger's own path would make the I/O float).
    """
    import warnings

    from edgepipe.fdcapture import captured
    from edgepipe.keras_io import import_tensorflow
    from edgepipe.keras_io.convert import ConversionError, _apply_scheme, _converter, _representative

    tf = import_tensorflow()
    from tensorflow.lite.python import convert as tf_convert

    with captured():
        converter = _converter(model, tf)
    _apply_scheme(converter, settings, tf)
    converter.representative_dataset = _representative(rep, on_sample)
    converter._experimental_calibrate_only = True
    try:
        with captured(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calibrated = converter.convert()
            return bytes(tf_convert.mlir_quantize(
                calibrated, disable_per_channel=not settings.per_channel, fully_quantize=True,
                input_data_type=getattr(tf, settings.input_dtype.value),
                output_data_type=getattr(tf, settings.output_dtype.value),
                denylisted_nodes=nodes))
    except Exception as exc:  # noqa: BLE001 - converter errors are free text
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise ConversionError(f"the TFLite converter refused the float fallback for {nodes[:3]}: {why}") from None


def _layers_at_fault(ctx: BuildContext, data, tflite_bytes: bytes) -> tuple[list[str], dict[str, list[str]]]:
    """The worst layers by local error, and for each the TFLite op outputs to keep in float.

    A layer's tensors are the ones attribution measured it on (mapped by name *and* value,
    so a layer that owns a tensor only by value, e.g. a ReLU the converter fused away, is
    found too), plus the tensors named after it.
    """
    from edgepipe.tflite.model import parse_tflite
    from edgepipe.harness.attribution import attribute, tensor_owners

    from edgepipe.runtimes.isolated import RuntimeFailure

    if not ctx.inputs.io.single:  # per-layer attribution walks one input to one output
        return [], {}
    try:
        attr = attribute(ctx.model, tflite_bytes, data.take(ATTRIBUTION_SAMPLES))
    except RuntimeFailure:  # the reference kernels crashed on it: the other steps still run
        return [], {}
    worst = [e for e in attr.blamed()[1] if e.kind != "InputLayer"]
    tfl = parse_tflite(tflite_bytes)
    owners = tensor_owners(tfl, [layer.name for layer in ctx.model.layers])
    by_name = {t.name: t.index for t in tfl.tensors}
    nodes = {}
    for e in worst:
        measured = {by_name[e.tensor]} if e.tensor in by_name else set()
        owned = {i for i, name in owners.items() if name == e.layer} | measured
        readers = [op for op in tfl.operators if owned & set(op.inputs)]
        outs = owned | {o for op in readers for o in op.outputs if o >= 0}
        nodes[e.layer] = [tfl.tensors[i].name for i in sorted(outs) if tfl.tensors[i].name not in
                          {t.name for t in tfl.output_tensors}]
    return [e.layer for e in worst], nodes
