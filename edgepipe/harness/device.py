"""The model on the device's kernels and on the host reference: what build and verify both measure.

:func:`run_on_device` is the one way edgepipe measures a converted model on
eval data: the backend's plan names the device runner (TFLM for
microcontrollers, XNNPACK for Linux boards, the reference kernels for Ethos-U's
CPU equivalent) and the reference it is cross-checked against. Both run in
worker processes (:mod:`edgepipe.runtimes.isolated`); if the device runtime
crashes, hangs or refuses, the result says so and nothing is measured in its
place — accuracy measured on other kernels would be a figure the device does
not reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgepipe.checks import Check
from edgepipe.config.schema import TargetProfile
from edgepipe.harness import crosscheck
from edgepipe.harness.harness import EvalData, evaluate
from edgepipe.pipeline.progress import SILENT, Progress
from edgepipe.runtimes.base import TFLM, RuntimePlan, make_runner
from edgepipe.runtimes.isolated import RuntimeFailure
from edgepipe.runtimes.quant import rounding_for
from edgepipe.tflite.model import TfliteModel

REFERENCE_SAMPLES = 1000   # cap for the second runtime of the cross-check (evenly spread)
PER_OP_SAMPLES = 16


@dataclass
class DeviceRun:
    """``acc``: the accuracy section (None when the device runtime failed: ``failure`` says how);
    ``cross``: the cross-check checks (LSBs per kernel, top-1 disagreement)."""

    plan: RuntimePlan
    sha256: str = ""
    acc: dict | None = None
    failure: str | None = None
    cross: list[Check] = field(default_factory=list)

    @property
    def source(self) -> str:
        return f"measured:{self.plan.device}"

    def not_measured(self) -> list[Check]:
        """The checks when the device runtime could not run the model: accuracy failed (never guessed),
        the cross-checks skipped for the same reason."""
        return [Check("accuracy", "fail", None, None, "", f"not measured: {self.failure}", self.source),
                *crosscheck.both_skipped(f"not cross-checked: {self.failure}")]


def without_data(accuracy: Check) -> list[Check]:
    """The checks when there is no eval data: ``accuracy`` (skipped, saying what to pass) and both cross-checks."""
    return [accuracy, *crosscheck.both_skipped("no eval data: runtimes were not cross-checked")]


def run_on_device(tfl: TfliteModel, data: EvalData, plan: RuntimePlan, profile: TargetProfile, *,
                  float_fn=None, arena: int | None = None, progress: Progress = SILENT,
                  label: str = "evaluating", cross_check: bool = True, original_fn=None) -> DeviceRun:
    """Evaluate ``tfl`` on ``data`` with ``plan.device``, cross-checked with ``plan.reference``.

    ``arena``: the TFLM arena the firmware reserves (the backend's), used by a TFLM runner;
    ``original_fn``: the unpruned float model's outputs, when the model was pruned.
    """
    from edgepipe.pipeline.evaluate import eval_threads

    run = DeviceRun(plan, tfl.sha256)
    runners = []
    try:
        device = _runner(plan.device, tfl, eval_threads(profile), arena, runners)
        reference, why = (_reference(plan, tfl, arena, runners) if cross_check else (None, "not asked"))
        run.acc = evaluate(data, float_fn, device, tfl, reference=reference, reference_samples=REFERENCE_SAMPLES,
                           progress=progress, label=label, original_fn=original_fn)
    except RuntimeFailure as exc:
        run.failure = f"the device runtime {exc}"
        return run
    finally:
        for r in runners:
            r.close()
    run.acc["runtime"] = {"name": device.name, **plan.to_dict(), "threads": eval_threads(profile),
                          "batched": device.batched, "batching": device.batch_note, "isolated": True,
                          **({"arena_bytes": device.arena_bytes} if device.name == TFLM else {})}
    if cross_check:
        run.cross = _cross_checks(tfl, data, plan, profile, run.acc, reference, why, arena)
    return run


def _runner(name: str, tfl: TfliteModel, threads: int, arena: int | None, opened: list, rounding=None):
    runner = make_runner(name, tfl.data, threads, arena if name == TFLM else None, rounding)
    opened.append(runner)
    return runner


def _reference(plan: RuntimePlan, tfl: TfliteModel, arena: int | None, opened: list):
    """(the cross-check's reference runner, "") or (None, why it cannot run the model).

    It quantizes inputs as the *device* does, so the two see the same integers
    and every LSB of difference is the kernels'.
    """
    try:
        return _runner(plan.reference, tfl, 1, arena, opened, rounding_for(plan.device)), ""
    except RuntimeFailure as exc:
        return None, str(exc)


def _cross_checks(tfl: TfliteModel, data: EvalData, plan: RuntimePlan, profile: TargetProfile, acc: dict,
                  reference, why: str, arena: int | None) -> list[Check]:
    """Per-kernel LSBs (``runtime_lsb_diff``) and end-to-end top-1 disagreement (``runtime_agreement``)."""
    rule = profile.accuracy
    if reference is None:
        reason = f"{plan.reference} cannot run the model, so it was not cross-checked: {why}"
        return crosscheck.both_skipped(reason)
    cross = acc["cross_check"]
    cross.update({"device": plan.device, "reference": plan.reference})
    if cross.get("reference_failure"):
        return crosscheck.both_skipped(f"the cross-check stopped: {cross['reference_failure']}")
    agreement = crosscheck.agreement_check(cross, rule.max_runtime_disagreement)
    if any(t.dtype.startswith("float") for t in tfl.output_tensors):
        return [crosscheck.skipped("float outputs: no LSBs to compare (see accuracy.outputs[].device_vs_reference)"),
                agreement]
    per_op = None
    if cross["max_lsb"] > rule.max_lsb_diff:
        samples = data.at(cross["worst_samples"][:PER_OP_SAMPLES])  # the samples whose outputs differ most
        try:
            per_op = crosscheck.per_op_lsb(tfl.data, tfl, samples, (plan.device, plan.reference), arena)
            cross["per_op"] = per_op
        except RuntimeFailure as exc:  # the kernels could not be localised: the end-to-end figure is held
            cross["per_op"] = {"error": str(exc)}
    return [crosscheck.lsb_check(cross, rule.max_lsb_diff, per_op), agreement]
