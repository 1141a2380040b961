"""Accuracy of one converted model on the build's eval data, and the check against ``max_drop``.

Shared by the accuracy-aware loop (quantize stage) and the verify stage; the
harness itself is :mod:`edgepipe.harness.harness`.
"""

from __future__ import annotations

import math
import os

from edgepipe.checks import Check
from edgepipe.config.schema import Accuracy, TargetProfile
from edgepipe.pipeline.context import BuildContext
from edgepipe.harness import metrics
from edgepipe.harness.harness import EvalData


def eval_data(ctx: BuildContext) -> EvalData | None:
    """The build's eval split as harness data (already validated and preprocessed by the loader)."""
    ev = ctx.inputs.eval
    return None if ev is None else split_data(ev, ctx.inputs.io)


def split_data(split, io) -> EvalData:
    """A loaded :class:`~edgepipe.pipeline.inputs.Split` as harness data, each output judged as ``io`` says."""
    from edgepipe.harness.harness import OutputJudge

    if io.single:
        out = io.outputs[0]
        return EvalData(split.x, split.labels.get(out.name), split.where, task=out.task, n_classes=out.n_classes)
    judges = tuple(OutputJudge(o.name, o.task, o.n_classes) for o in io.outputs)
    return EvalData(split.x, None, split.where, outputs=judges, labels=dict(split.labels))


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
    original = ctx.inputs.model if ctx.project.prune is not None and ctx.inputs.model is not ctx.model else None
    return run_on_device(tfl, data, backend.plan, ctx.profile, float_fn=float_outputs(ctx.model, data),
                         arena=backend.runner_arena(tfl), progress=ctx.progress, label=label,
                         cross_check=cross_check,
                         original_fn=float_outputs(original, data) if original is not None else None)


def accuracy_check(acc: dict | None, rule: Accuracy, source: str = "measured:litert-host") -> Check:
    """The accuracy gate: per output, against the labels where there are any, else against the float model.

    With labels: top-1 drop (classification) or RMSE increase (regression)
    against the profile's ``max_drop``. Without: top-1 agreement with the float
    model (classification, ``min_agreement``) or SQNR and cosine (regression
    and raw outputs, ``min_sqnr_db``, ``min_cosine``) — a float model and
    inputs are always at hand, so a build is measured even with no labels. The
    gate's excess over its limit is stored in ``acc`` (``drop``, ``drop_unit``)
    so the accuracy-aware loop can rank attempts by it.
    """
    if acc is None:
        return Check("accuracy", "skip", detail="no eval data: accuracy was not verified (set data.eval)")
    if "float" in acc and "quantized" in acc:  # one labelled output (or a baseline standing for the float model)
        gates = [_labelled(acc, rule, source, "")]
    else:
        gates = [g for o in acc.get("outputs", []) if (g := _output_gate(o, rule, source)) is not None]
    if not gates:
        labelled = [o["name"] for o in acc.get("outputs", []) if o.get("labelled")]
        why = (f"outputs {labelled} were measured against their labels (accuracy.outputs), but there is no float "
               "model to hold them to a drop" if labelled else "no labels and no float model")
        return Check("accuracy", "skip", detail=f"nothing to hold the model to: {why} (give labelled eval data, "
                     "or build from the Keras model)", source=source)
    worst = max(gates, key=lambda g: (g[0].status == "fail", g[1]))
    acc["drop"], acc["drop_unit"] = worst[1], worst[0].unit
    if len(gates) == 1:
        return gates[0][0]
    failed = [g[0] for g in gates if g[0].status == "fail"]
    detail = "; ".join(g[0].detail for g in gates)
    return Check("accuracy", "fail" if failed else "pass", worst[0].measured, worst[0].budget, worst[0].unit,
                 detail, source)


def _output_gate(out: dict, rule: Accuracy, source: str) -> tuple[Check, float] | None:
    """(check, excess over its limit) for one output of the accuracy section, or None (nothing to compare)."""
    name = f"output {out['name']!r}: "
    if out.get("labelled") and "float" in out and out["task"] in ("classification", "regression"):
        return _labelled({**out, "drop": None}, rule, source, name)
    if out["task"] == "classification" and "agreement" in out:
        return _agreement(out, rule, source, name)
    if "quantized_vs_float" in out and out["quantized_vs_float"].get("samples"):
        return _fidelity(out["quantized_vs_float"], rule, source, name)
    return None


def _labelled(acc: dict, rule: Accuracy, source: str, name: str) -> tuple[Check, float]:
    if acc["task"] == "classification":
        drop, limit, unit, detail = _top1_drop(acc["float"]["top1"], acc["quantized"]["top1"], rule)
    else:
        drop, limit, unit, detail = _rmse_increase(acc["float"]["rmse"], acc["quantized"]["rmse"], rule)
    status = "pass" if drop <= limit + 1e-9 else "fail"
    measured = float(f"{drop:.4g}") if unit == "RMSE increase" else round(drop, 4)  # RMSE units may be tiny
    return Check("accuracy", status, measured, limit, unit, name + detail, source), drop


def _agreement(out: dict, rule: Accuracy, source: str, name: str) -> tuple[Check, float]:
    """Without labels: the share of samples whose top-1 class changed bounds the top-1 drop."""
    least = rule.min_agreement if rule.min_agreement is not None else 100.0 - rule.max_drop
    changed, limit = 100.0 - out["agreement"], 100.0 - least
    n = out["quantized_vs_float"].get("samples", 0)
    status = "pass" if changed <= limit + 1e-9 else "fail"
    detail = (f"{name}top-1 agrees with the float model on {out['agreement']:.2f}% of {n} unlabelled samples, "
              f"min {least:g}% (accuracy.min_agreement)")
    return Check("accuracy", status, round(changed, 4), round(limit, 4), "% changed class", detail, source), changed


def _fidelity(err: dict, rule: Accuracy, source: str, name: str) -> tuple[Check, float]:
    """Without labels, regression and raw outputs: SQNR (and cosine, if asked) against the float model."""
    sqnr = err["sqnr_db"]
    ok = sqnr >= rule.min_sqnr_db
    detail = (f"{name}SQNR {sqnr:.1f} dB against the float model on {err['samples']} unlabelled samples, "
              f"min {rule.min_sqnr_db:g} dB (accuracy.min_sqnr_db); cosine {err['cosine_mean']:.4f}")
    if rule.min_cosine is not None:
        ok = ok and err["cosine_mean"] >= rule.min_cosine
        detail += f", min {rule.min_cosine:g} (accuracy.min_cosine)"
    short = rule.min_sqnr_db - sqnr if math.isfinite(sqnr) else (-1e9 if sqnr > 0 else 1e9)
    measured = round(sqnr, 2) if math.isfinite(sqnr) else None
    return Check("accuracy", "pass" if ok else "fail", measured, rule.min_sqnr_db, "dB SQNR (min)", detail,
                 source), short


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


def against_original(acc: dict, rule: Accuracy, source: str) -> Check | None:
    """Without labels, the shipped int8 model against the unpruned float model: agreement or SQNR per output."""
    gates = []
    for o in acc.get("outputs", []):
        vs = o.get("quantized_vs_original")
        if vs and vs.get("samples"):
            as_float = {"name": o["name"], "task": o["task"], "quantized_vs_float": vs,
                        **({"agreement": vs["agreement"]} if "agreement" in vs else {})}
            gates.append(_output_gate(as_float, rule, source))
    gates = [g for g in gates if g is not None]
    if not gates:
        return None
    failed = [g for g, _ in gates if g.status == "fail"]
    worst = (failed or [g for g, _ in gates])[0]
    detail = "against the unpruned float model: " + "; ".join(g.detail for g, _ in gates)
    return Check("accuracy_vs_original", worst.status, worst.measured, worst.budget, worst.unit, detail, source)
