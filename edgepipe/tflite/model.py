"""A read-only view of a ``.tflite`` flatbuffer: operators, tensors, buffers.

Parsed with the schema that ships in ``ai_edge_litert`` (pure Python
flatbuffers), so it never imports TensorFlow and never crashes the process on
a malformed file: every problem becomes an :class:`InputError` *before* an
interpreter (which can segfault on bad models) ever sees the bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgepipe.errors import InputError

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_DTYPE_BYTES = {
    "float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "bool": 1,
    "int16": 2, "int8": 1, "float64": 8, "uint32": 4, "uint16": 2, "int4": 1,
}


@dataclass(frozen=True)
class Tensor:
    """One tensor of the main subgraph."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    is_constant: bool = False
    buffer_bytes: int = 0
    is_variable: bool = False

    @property
    def nbytes(self) -> int:
        """Bytes this tensor occupies at run time (constants: their buffer)."""
        if self.is_constant:
            return self.buffer_bytes
        n = int(np.prod([max(d, 1) for d in self.shape])) if self.shape else 1
        return n * _DTYPE_BYTES.get(self.dtype, 4)

    @property
    def is_quantized(self) -> bool:
        return len(self.scale) > 0

    def to_dict(self) -> dict:
        return {
            "index": self.index, "name": self.name, "shape": list(self.shape),
            "dtype": self.dtype, "constant": self.is_constant, "bytes": self.nbytes,
            "scale": list(self.scale[:4]), "zero_point": list(self.zero_point[:4]),
            "per_channel": len(self.scale) > 1,
        }


@dataclass(frozen=True)
class Operator:
    """One operator: its builtin name and tensor indices (-1 = optional absent)."""

    index: int
    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    custom_code: str | None = None


@dataclass(frozen=True)
class TfliteModel:
    """The main subgraph of a .tflite model, plus file facts."""

    path: str
    size: int
    sha256: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    subgraph_count: int = 1
    description: str = ""
    has_sparsity: bool = False
    data: bytes = field(default=b"", repr=False, compare=False)

    @cached_property
    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.operators:
            counts[op.op] = counts.get(op.op, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def input_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.inputs]

    @property
    def output_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.outputs]

    @property
    def weight_bytes(self) -> int:
        return sum(t.buffer_bytes for t in self.tensors if t.is_constant)

    def producers(self) -> dict[int, Operator]:
        """Tensor index -> the operator that writes it."""
        return {t: op for op in self.operators for t in op.outputs if t >= 0}


def read_tflite(path: str | Path) -> TfliteModel:
    """Parse a .tflite file; a truncated or foreign file gives one clear InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "a .tflite file", "no such file")
    return parse_tflite(path.read_bytes(), str(path))


def parse_tflite(data: bytes, where: str = "<bytes>") -> TfliteModel:
    """Parse flatbuffer bytes (see :func:`read_tflite`)."""
    if len(data) < 16:
        raise InputError(where, "a TFLite flatbuffer", f"{len(data)} bytes (file is empty or truncated)")
    if data[4:8] != b"TFL3":
        raise InputError(
            where, "a TFLite flatbuffer (identifier 'TFL3' at byte 4)",
            f"{data[4:8]!r}", "is this a .tflite file? Keras models go to `edgepipe build`",
        )
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        return _view(model, data, where)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding failure means a corrupt file
        raise InputError(where, "a well-formed TFLite flatbuffer",
                         f"a corrupt or truncated file ({type(exc).__name__}: {exc})") from None


def _view(model: schema.ModelT, data: bytes, where: str) -> TfliteModel:
    if not model.subgraphs:
        raise InputError(where, "a model with at least one subgraph", "none")
    sg = model.subgraphs[0]
    buffers = model.buffers or []
    codes = model.operatorCodes or []
    tensors = tuple(_tensor(i, t, buffers) for i, t in enumerate(sg.tensors or []))
    ops = []
    for i, op in enumerate(sg.operators or []):
        code = codes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        ops.append(Operator(i, name if name != "CUSTOM" else f"CUSTOM:{custom}",
                            _ints(op.inputs), _ints(op.outputs), custom))
    n_tensors = len(tensors)
    for op in ops:
        for t in op.inputs + op.outputs:
            if t >= n_tensors:
                raise InputError(where, f"tensor indices below {n_tensors}", f"operator {op.index} uses {t}")
    desc = model.description.decode() if isinstance(model.description, bytes) else (model.description or "")
    sparse = any(t.sparsity is not None for t in (sg.tensors or []))
    return TfliteModel(
        path=where, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
        tensors=tensors, operators=tuple(ops), inputs=_ints(sg.inputs), outputs=_ints(sg.outputs),
        subgraph_count=len(model.subgraphs), description=desc, has_sparsity=sparse, data=bytes(data),
    )


def _tensor(index: int, t: schema.TensorT, buffers: list) -> Tensor:
    buf = buffers[t.buffer] if 0 < t.buffer < len(buffers) else None
    nbytes = int(len(buf.data)) if buf is not None and buf.data is not None else 0
    q = t.quantization
    scale = tuple(float(s) for s in (q.scale if q is not None and q.scale is not None else ()))
    zp = tuple(int(z) for z in (q.zeroPoint if q is not None and q.zeroPoint is not None else ()))
    name = t.name.decode() if isinstance(t.name, bytes) else (t.name or f"tensor_{index}")
    return Tensor(
        index=index, name=name, shape=_ints(t.shape), dtype=_TYPE_NAMES.get(t.type, f"type{t.type}"),
        scale=scale, zero_point=zp, is_constant=nbytes > 0, buffer_bytes=nbytes, is_variable=bool(t.isVariable),
    )


def _ints(values) -> tuple[int, ...]:
    return tuple(int(v) for v in values) if values is not None else ()
