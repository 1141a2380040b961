"""Accuracy of one converted model on the build's eval data, and the check against ``max_drop``.

Shared by the accuracy-aware loop (quantize stage) and the verify stage; the
harness itself is :mod:`edgepipe.harness.harness`.
"""

from __future__ import annotations

import os

from edgepipe.checks import Check
from edgepipe.config.schema import Accuracy, TargetProfile
from edgepipe.errors import EdgepipeError
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


def measure(ctx: BuildContext, data: EvalData, tflite_bytes: bytes, runner_name: str, label: str,
            reference=None, reference_samples: int | None = None):
    """(accuracy section, runner) for ``tflite_bytes`` on ``data``, cross-checked with ``reference`` if given."""
    from edgepipe.runtimes.base import XNNPACK, make_runner
    from edgepipe.tflite.model import parse_tflite
    from edgepipe.harness.harness import evaluate, float_outputs

    fallback = None
    try:
        runner = make_runner(runner_name, tflite_bytes, eval_threads(ctx.profile))
    except (RuntimeError, ValueError, EdgepipeError) as exc:  # e.g. the reference kernels lack a float op
        runner = make_runner(XNNPACK, tflite_bytes, eval_threads(ctx.profile))
        fallback = f"{runner_name} cannot run the model ({first_line(exc)}); measured with {XNNPACK}"
    acc = evaluate(data, float_outputs(ctx.model, data), runner, parse_tflite(tflite_bytes), reference=reference,
                   reference_samples=reference_samples, progress=ctx.progress, label=label)
    acc["runtime"] = {"name": runner.name, "threads": eval_threads(ctx.profile), "batched": runner.batched,
                      "batching": runner.batch_note, **({"fallback": fallback} if fallback else {})}
    return acc, runner


def first_line(exc: Exception) -> str:
    """The first line of an exception's message (runtimes' messages run long)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def accuracy_check(acc: dict | None, rule: Accuracy, source: str = "measured:litert-host") -> Check:
    """Top-1 drop (classification) or RMSE growth (regression) against max_drop."""
    if acc is None:
        return Check("accuracy", "skip", detail="no eval data: accuracy was not verified (set data.eval)")
    if acc["task"] == "classification":
        f, q = acc["float"]["top1"], acc["quantized"]["top1"]
        drop = metrics.accuracy_drop(f, q, rule.drop_mode)
        unit = "points" if rule.drop_mode == "absolute" else "% of float"
        detail = f"top-1 {f:.2f}% float -> {q:.2f}% quantized: drop {drop:.2f} {unit}, max {rule.max_drop:g}"
    else:
        f, q = acc["float"]["rmse"], acc["quantized"]["rmse"]
        drop = 100.0 * (q - f) / f if f > 0 else 0.0
        unit = "% RMSE increase"
        detail = f"RMSE {f:.4g} float -> {q:.4g} quantized: +{drop:.2f}%, max {rule.max_drop:g}%"
    status = "pass" if drop <= rule.max_drop + 1e-9 else "fail"
    acc["drop"] = drop
    acc["drop_unit"] = unit
    return Check("accuracy", status, round(drop, 4), rule.max_drop, unit, detail, source)
