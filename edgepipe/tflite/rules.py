"""Checks on the converted flatbuffer that the converter itself does not enforce.

With ``TFLITE_BUILTINS_INT8`` the converter still lets an op without an int8
kernel become DEQUANTIZE -> float op -> QUANTIZE. An int8-only accelerator
cannot run that, so the build must fail and name the ops.
"""

from __future__ import annotations

from edgepipe.checks import Check
from edgepipe.tflite.model import Operator, Tensor, TfliteModel

_FLOAT = {"float32", "float16", "float64"}
_INT = {"int8", "uint8", "int16"}


def float_islands(model: TfliteModel) -> list[str]:
    """Ops that compute in float, or convert between float and int mid-graph, in any subgraph.

    A streaming model's init subgraph counts: a float state written there is a
    float tensor on the device. Resource handles (dtype ``resource``) are not float.
    """
    bad = []
    for op in model.all_operators:
        problem = _float_problem(op, model.subgraphs[op.subgraph].tensors)
        if problem:
            bad.append(f"{op.label} ({problem})")
    return bad


def _float_problem(op: Operator, tensors: tuple[Tensor, ...]) -> str | None:
    """Why this op is a float island, or None."""
    ins = [tensors[i] for i in op.inputs if i >= 0]
    outs = [tensors[i] for i in op.outputs if i >= 0]
    acts = [t for t in ins + outs if not t.is_constant]
    if op.op == "DEQUANTIZE" and any(t.dtype in _FLOAT for t in outs):
        return f"{ins[0].name if ins else '?'} -> float"
    if op.op == "QUANTIZE" and any(t.dtype in _FLOAT for t in ins):
        return f"float {ins[0].name} -> int"
    if any(t.dtype in _FLOAT for t in acts):
        return f"float tensor {next(t.name for t in acts if t.dtype in _FLOAT)}"
    if op.op != "DEQUANTIZE" and any(t.dtype in _FLOAT for t in ins if t.is_constant):
        return "float weights"
    return None


def int8_only_check(model: TfliteModel) -> Check:
    """Every activation integer, no float islands, no float I/O.

    Which integer type the I/O is (int8 or a uint8 output, as microWakeWord's
    models have) is the I/O contract's business (:func:`io_dtype_check`), not a float op.
    """
    problems = float_islands(model)
    for role, tensors in (("input", model.input_tensors), ("output", model.output_tensors)):
        problems += [f"model {role} {t.name} is {t.dtype}" for t in tensors if t.dtype in _FLOAT]
    if not problems:
        return Check("int8_only", "pass", 0, 0, "ops", "every op and activation is integer")
    shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
    return Check("int8_only", "fail", len(problems), 0, "ops",
                 f"{len(problems)} float op(s) or tensor(s) on an int8-only target: {shown}")


def io_dtype_check(model: TfliteModel, input_dtype: str, output_dtype: str) -> Check:
    """The converter honoured the requested input/output types."""
    found = [t.dtype for t in model.input_tensors] + [t.dtype for t in model.output_tensors]
    want = [input_dtype] * len(model.inputs) + [output_dtype] * len(model.outputs)
    if found == want:
        return Check("io_dtype", "pass", ",".join(found), ",".join(want), "", "model I/O types as requested")
    return Check("io_dtype", "fail", ",".join(found), ",".join(want), "",
                 f"model I/O types are {found}, requested {want}")


def static_shape_check(model: TfliteModel) -> Check:
    """Dynamic shapes (SHAPE/FILL chains, -1 in a shape, or in a signature beyond the batch axis)
    do not run on microcontrollers or NPUs, whichever subgraph they are in.

    A -1 batch in the signature alone passes: the runtimes use the shape, batch 1 (the
    detail says so, naming the inputs).
    """
    tensors = [t for sg in model.subgraphs for t in sg.tensors]
    dyn = [f"{t.label} {list(t.shape_signature)}" for t in tensors if t.dynamic_beyond_batch]
    dyn_ops = [op.label for op in model.all_operators if op.op in ("SHAPE", "FILL")]
    if dyn or dyn_ops:
        return Check("static_shapes", "fail", len(dyn) + len(dyn_ops), 0, "tensors",
                     f"dynamic shapes: {_shorten(dyn + dyn_ops)}; fix every dimension but the batch when "
                     "converting (e.g. keras.Input(shape=(...)) with no None)")
    batch = [t.label for t in model.input_tensors if t.is_dynamic]
    note = (f"; the batch axis of {', '.join(batch)} is dynamic in the signature, the model runs at batch 1"
            if batch else "")
    return Check("static_shapes", "pass", 0, 0, "tensors", "all shapes static" + note)


def _shorten(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")
