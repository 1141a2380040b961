"""Device runtime vs host reference, in LSBs of the integer outputs.

Two runtimes that round one kernel differently by 1 LSB can differ by several
LSBs at the model's output: differences compound (a 1-LSB change in a logit
moves a softmax output by a few LSBs). The profile's ``max_lsb_diff`` is
therefore held per kernel: when the end-to-end difference on the eval data
is over the budget, every op is run alone on both runtimes with the same
integer inputs (:func:`per_op_lsb`), and the check fails only if a kernel
differs by more than the budget, naming it. Both figures go into the report.

Per-kernel LSBs are not the whole story, so the end-to-end top-1 disagreement
between the two runtimes is gated too (``runtime_agreement``, the profile's
``max_runtime_disagreement``).
"""

from __future__ import annotations

import numpy as np

from edgepipe.checks import Check
from edgepipe.runtimes.base import TFLM
from edgepipe.tflite.model import TfliteModel

_INT = ("int8", "uint8", "int16", "int32")
NAME = "runtime_lsb_diff"
AGREEMENT = "runtime_agreement"


def per_op_lsb(model_bytes: bytes, tfl: TfliteModel, x: np.ndarray, runtimes: tuple[str, str],
               tflm_arena: int | None = None) -> dict:
    """Each op alone on both ``runtimes``, fed the reference run's tensors for samples ``x``.

    Every single-op model runs in a worker per runtime (a crash is recorded as
    that op's error, and the next op gets a fresh worker). Returns the largest
    difference, the op it occurred in, and per-op figures.
    """
    from edgepipe.runtimes.isolated import RuntimeFailure, Worker
    from edgepipe.runtimes.litert import intermediates
    from edgepipe.runtimes.surgery import single_op_model

    acts = sorted({i for op in tfl.operators for i in (*op.inputs, *op.outputs)
                   if i >= 0 and not tfl.tensors[i].is_constant})
    values = intermediates(model_bytes, x, acts)
    workers = {name: Worker(name) for name in runtimes}
    arena = 2 * (tflm_arena or 1 << 20) + (16 << 10)
    ops = []
    try:
        for op in tfl.operators:
            if not all(tfl.tensors[o].dtype in _INT for o in op.outputs if o >= 0):
                continue
            ins = [values[i] for i in op.inputs if i >= 0 and not tfl.tensors[i].is_constant]
            alone = single_op_model(model_bytes, op.index)
            try:
                a, b = (workers[name].call("single_op", runtime=name, model=alone, inputs=ins, arena=arena)
                        for name in runtimes)
            except RuntimeFailure as exc:
                ops.append({"op": f"{op.op} #{op.index}", "max_lsb": None, "error": str(exc).splitlines()[0]})
                continue
            worst = max(int(np.max(np.abs(p.astype(np.int64) - q.astype(np.int64)))) for p, q in zip(a, b))
            ops.append({"op": f"{op.op} #{op.index}", "max_lsb": worst})
    finally:
        for w in workers.values():
            w.close()
    measured = [o for o in ops if o["max_lsb"] is not None]
    top = max(measured, key=lambda o: o["max_lsb"], default={"op": None, "max_lsb": 0})
    return {"max_lsb": top["max_lsb"], "op": top["op"], "samples": int(len(x)), "ops": ops}


def run_single_op(runtime: str, model_bytes: bytes, inputs: list[np.ndarray], arena: int) -> list[np.ndarray]:
    """A single-op model on stacked raw inputs, one sample per invoke, in this process (the worker's side)."""
    if runtime == TFLM:
        from edgepipe.runtimes.tflm import TflmRunner

        return TflmRunner(model_bytes, arena_size=arena, _checked=True).run(inputs)
    from edgepipe.runtimes.litert import new_interpreter

    it = new_interpreter(model_bytes, {"litert-xnnpack": "xnnpack", "litert-reference": "reference"}[runtime])
    outs: list[list[np.ndarray]] = []
    for s in range(len(inputs[0])):
        for d, v in zip(it.get_input_details(), inputs):
            it.set_tensor(d["index"], v[s:s + 1])
        it.invoke()
        outs.append([it.get_tensor(d["index"]).copy() for d in it.get_output_details()])
    return [np.concatenate(o) for o in zip(*outs)]


def lsb_check(cross: dict, budget: int, per_op: dict | None = None) -> Check:
    """Largest LSB difference between ``cross["device"]`` and ``cross["reference"]`` against the budget."""
    device, reference, end = cross["device"], cross["reference"], cross["max_lsb"]
    where = f"{device} vs {reference} on {cross['samples']} eval samples"
    source = f"measured:{device}+{reference}"
    if per_op is None:
        ok = end <= budget
        return Check(NAME, "pass" if ok else "fail", end, budget, "LSB",
                     f"{where}: largest output difference {end} LSB, budget {budget}", source)
    ok = per_op["max_lsb"] <= budget
    detail = (f"{where}: outputs differ by up to {end} LSB end to end; run op by op on the same inputs "
              f"({per_op['samples']} samples) the largest kernel difference is {per_op['max_lsb']} LSB"
              + (f" ({per_op['op']})" if per_op["op"] else "") + f", budget {budget} per kernel")
    if not ok:
        detail += f": {per_op['op']} on {device} rounds differently from {reference}"
    return Check(NAME, "pass" if ok else "fail", per_op["max_lsb"], budget, "LSB", detail, source)


def agreement_check(cross: dict, budget: float) -> Check:
    """Percent of cross-checked samples whose top-1 class differs between device and reference.

    Kernel LSBs are not the whole story: two runtimes 1 LSB apart per kernel can
    still flip the predicted class of inputs near a decision boundary, and that
    is what a user of the device sees.
    """
    if "top1_disagreement_pct" not in cross:
        return skipped("not a classification task: see accuracy.outputs[].device_vs_reference", AGREEMENT)
    pct = cross["top1_disagreement_pct"]
    ok = pct <= budget + 1e-9
    detail = (f"{cross['device']} vs {cross['reference']} on {cross['samples']} eval samples: top-1 class differs on "
              f"{pct:.2f}% of them, budget {budget:g}%")
    return Check(AGREEMENT, "pass" if ok else "fail", round(pct, 4), budget, "%", detail,
                 f"measured:{cross['device']}+{cross['reference']}")


def skipped(reason: str, name: str = NAME) -> Check:
    return Check(name, "skip", None, None, "LSB" if name == NAME else "%", reason)


def both_skipped(reason: str) -> list[Check]:
    """``runtime_lsb_diff`` and ``runtime_agreement``, skipped for one reason."""
    return [skipped(reason), skipped(reason, AGREEMENT)]
