"""Accuracy of one converted model on the build's eval data, and the check against ``max_drop``.

Shared by the accuracy-aware loop (quantize stage) and the verify stage; the
harness itself is :mod:`edgepipe.harness.harness`.
"""

from __future__ import annotations

import os

from edgepipe.checks import Check
from edgepipe.config.schema import Accuracy, TargetProfile
from edgepipe.pipeline.context import BuildContext
from edgepipe.harness import metrics
from edgepipe.harness.harness import EvalData


def eval_data(ctx: BuildContext) -> EvalData | None:
    """The build's eval split as harness data (already validated and preprocessed by the loader)."""
    ev = ctx.inputs.eval
    if ev is None:
        return None
    n_classes = ctx.inputs.n_outputs if ctx.project.task == "classification" else None
    return EvalData(ev.x, ev.y, ev.where, task=ctx.project.task, n_classes=n_classes)


def eval_threads(profile: TargetProfile) -> int:
    """Threads for host evaluation: the device's count, but no more than this host has."""
    return max(1, min(profile.threads, os.cpu_count() or 1))


def measure(ctx: BuildContext, data: EvalData, tflite_bytes: bytes, label: str, cross_check: bool = False):
    """:class:`~edgepipe.harness.device.DeviceRun` of ``tflite_bytes`` on ``data`` with the target's plan.

    The device runner (and, with ``cross_check``, the reference) runs in a worker
    process at the arena the target's backend gives it; if it cannot run the
    model, ``run.acc`` is None and ``run.failure`` says why — accuracy is never
    measured on other kernels in its place.
    """
    from edgepipe.backends import backend_for
    from edgepipe.harness.device import run_on_device
    from edgepipe.harness.harness import float_outputs
    from edgepipe.tflite.model import parse_tflite

    backend, tfl = backend_for(ctx.profile), parse_tflite(tflite_bytes)
    return run_on_device(tfl, data, backend.plan, ctx.profile, float_fn=float_outputs(ctx.model, data),
                         arena=backend.runner_arena(tfl), progress=ctx.progress, label=label,
                         cross_check=cross_check)


def accuracy_check(acc: dict | None, rule: Accuracy, source: str = "measured:litert-host") -> Check:
    """Top-1 drop (classification) or RMSE increase (regression) against the profile's budget.

    The drop and its unit are stored in ``acc`` (``drop``, ``drop_unit``) so
    the accuracy-aware loop can rank attempts by it.
    """
    if acc is None:
        return Check("accuracy", "skip", detail="no eval data: accuracy was not verified (set data.eval)")
    if acc["task"] == "classification":
        drop, limit, unit, detail = _top1_drop(acc["float"]["top1"], acc["quantized"]["top1"], rule)
    else:
        drop, limit, unit, detail = _rmse_increase(acc["float"]["rmse"], acc["quantized"]["rmse"], rule)
    status = "pass" if drop <= limit + 1e-9 else "fail"
    acc["drop"] = drop
    acc["drop_unit"] = unit
    measured = float(f"{drop:.4g}") if unit == "RMSE increase" else round(drop, 4)  # RMSE units may be tiny
    return Check("accuracy", status, measured, limit, unit, detail, source)


def _top1_drop(f: float, q: float, rule: Accuracy) -> tuple[float, float, str, str]:
    """(drop, limit, unit, detail); a relative drop from a float top-1 of 0 is infinite (see accuracy_drop)."""
    drop = metrics.accuracy_drop(f, q, rule.drop_mode)
    unit = "points" if rule.drop_mode == "absolute" else "% of float"
    detail = f"top-1 {f:.2f}% float -> {q:.2f}% quantized: drop {drop:.2f} {unit}, max {rule.max_drop:g}"
    if rule.drop_mode == "relative" and f <= 0:
        detail += " (a relative drop from a float top-1 of 0 means nothing: check the eval labels)"
    return drop, rule.max_drop, unit, detail


def _rmse_increase(f: float, q: float, rule: Accuracy) -> tuple[float, float, str, str]:
    """(drop, limit, unit, detail): the allowed increase is max(max_drop % of the float RMSE, max_rmse_increase).

    Stated in % of the float RMSE while that share is the larger (always, with
    the default ``max_rmse_increase: 0``, when the float RMSE is above 0); else
    as the absolute increase, held to ``max_rmse_increase``: at a float RMSE
    of 0 (labels that are the float model's own outputs) a percentage allows
    nothing, and a percentage of a tiny RMSE next to nothing.
    """
    if f > 0 and rule.max_drop / 100.0 * f >= rule.max_rmse_increase:
        drop = 100.0 * (q - f) / f
        return drop, rule.max_drop, "% RMSE increase", \
            f"RMSE {f:.4g} float -> {q:.4g} quantized: {drop:+.2f}%, max {rule.max_drop:g}%"
    why = ("the float RMSE is 0, so max_drop, a percentage of it, allows nothing" if f <= 0 else
           f"it allows more than max_drop {rule.max_drop:g}% of the float RMSE")
    return q - f, rule.max_rmse_increase, "RMSE increase", \
        (f"RMSE {f:.4g} float -> {q:.4g} quantized: {q - f:+.4g}, max +{rule.max_rmse_increase:g} "
         f"(accuracy.max_rmse_increase; {why})")
