"""Evaluation-only copies of a ``.tflite`` flatbuffer, edited with the schema's object API.

Two edits, both for verification on the host, never for the shipped artifact:

- :func:`batchable`: models are converted with batch 1, and a ``Flatten`` becomes a
  ``RESHAPE`` to the constant shape ``[1, n]``, so resizing the batch axis fails.
  Replacing that leading 1 by -1 lets the interpreter run many samples per
  invoke with the same kernels; callers must still check the outputs against
  batch-1 runs of the original model (:class:`~edgepipe.runtimes.litert.LiteRTRunner` does).
- :func:`single_op_model`: one operator of the model on its own, so two runtimes
  can be compared kernel by kernel on the same integer inputs.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema


def _unpack(model_bytes: bytes):
    return schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)


def _pack(model) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _opcode(model, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _constant(model, tensor) -> bool:
    data = model.buffers[tensor.buffer].data if 0 < tensor.buffer < len(model.buffers) else None
    return data is not None and len(data) > 0


def batchable(model_bytes: bytes) -> bytes | None:
    """A copy whose batch-1 RESHAPE targets keep the batch axis free, or None if there are none."""
    model = _unpack(model_bytes)
    graph = model.subgraphs[0]
    changed = 0
    for op in graph.operators:
        if _opcode(model, op) != schema.BuiltinOperator.RESHAPE:
            continue
        if graph.tensors[op.inputs[0]].shape is None or graph.tensors[op.inputs[0]].shape[0] != 1:
            continue  # only reshapes that carry the batch axis through
        if len(op.inputs) > 1 and op.inputs[1] >= 0:
            buf = model.buffers[graph.tensors[op.inputs[1]].buffer]
            if buf.data is not None and len(buf.data) >= 4:
                shape = np.frombuffer(bytes(bytearray(buf.data)), np.int32).copy()
                if shape[0] == 1:
                    shape[0] = -1
                    buf.data = np.frombuffer(shape.tobytes(), np.uint8)
                    changed += 1
        opts = op.builtinOptions
        if opts is not None and getattr(opts, "newShape", None) is not None and len(opts.newShape):
            if opts.newShape[0] == 1:
                opts.newShape = [-1, *list(opts.newShape)[1:]]
                changed += 1
    return _pack(model) if changed else None


def single_op_model(model_bytes: bytes, op_index: int) -> bytes:
    """Operator ``op_index`` of the main subgraph alone: its activation inputs in, its outputs out."""
    model = _unpack(model_bytes)
    graph = model.subgraphs[0]
    op = graph.operators[op_index]
    graph.operators = [op]
    graph.inputs = [i for i in op.inputs if i >= 0 and not _constant(model, graph.tensors[i])]
    graph.outputs = [i for i in op.outputs if i >= 0]
    model.subgraphs = [graph]
    model.signatureDefs = []
    return _pack(model)

