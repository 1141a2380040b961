"""A read-only view of a ``.tflite`` flatbuffer: subgraphs, operators, tensors, variables.

Parsed with the schema that ships in ``ai_edge_litert`` (pure Python
flatbuffers), so it never imports TensorFlow and never crashes the process on
a malformed file: every problem (including any index that points outside its
table) becomes an :class:`InputError` *before* an interpreter (which can
segfault on bad models) ever sees the bytes.

Every subgraph is read. A streaming model keeps its state initialisation in a
second subgraph that the main one runs through CALL_ONCE; its ops must reach
the firmware's op resolver and the op checks, and its variables take RAM for
the whole inference. ``tensors``/``operators``/``inputs``/``outputs`` stay the
*main* subgraph (what the interpreter invokes); ``subgraphs`` and
``all_operators`` give the whole model.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ai_edge_litert import schema_py_generated as schema

from edgepipe.errors import InputError

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_DTYPE_BYTES = {
    "float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "bool": 1,
    "int16": 2, "int8": 1, "float64": 8, "uint32": 4, "uint16": 2, "int4": 1,
    "resource": 4,  # a handle (TFLM stores an int32 resource id); the variable itself is persistent
}
# Operator options that name another subgraph (control flow, CALL_ONCE, StableHLO regions).
_SUBGRAPH_FIELDS = ("initSubgraphIndex", "thenSubgraphIndex", "elseSubgraphIndex", "condSubgraphIndex",
                    "bodySubgraphIndex", "subgraph", "decompositionSubgraphIndex", "comparatorSubgraphIndex",
                    "updateComputationSubgraphIndex")


# Operator options that divide or step by their value: 0 (or less) crashes kernels (SIGFPE) or loops forever.
_POSITIVE_OPTIONS = ("strideW", "strideH", "strideD", "dilationWFactor", "dilationHFactor", "dilationDFactor",
                     "filterWidth", "filterHeight", "depthMultiplier", "blockSize")
# Types whose buffer size does not follow from the shape (strings, handles, sparse tensors are skipped too).
_UNSIZED = ("string", "resource", "variant")
#: More elements than a TFLite tensor can index (its sizes are 32-bit ints).
MAX_ELEMENTS = (1 << 31) - 1


def _bytes_of(shape: tuple[int, ...], dtype: str) -> int:
    """Run-time bytes of a tensor of this shape (unknown -1 dims count as 1, like batch 1)."""
    n = math.prod(max(d, 1) for d in shape)
    return n * _DTYPE_BYTES.get(dtype, 4)


def _in_subgraph(subgraph: int) -> str:
    return f" in subgraph {subgraph}" if subgraph else ""


@dataclass(frozen=True)
class Tensor:
    """One tensor of a subgraph; ``index`` is its position in that subgraph's table.

    ``shape`` is what the converter fixed (batch 1); ``shape_signature`` keeps
    the dimensions the model declared as unknown (-1). A -1 there means the
    runtime must resize the tensor: fine for LiteRT, impossible on TFLM or an NPU.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    is_constant: bool = False
    buffer_bytes: int = 0
    is_variable: bool = False
    shape_signature: tuple[int, ...] = ()  # () when the file has none: then it equals ``shape``
    subgraph: int = 0

    def __post_init__(self):
        if not self.shape_signature:
            object.__setattr__(self, "shape_signature", self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes this tensor occupies at run time (constants: their buffer)."""
        return self.buffer_bytes if self.is_constant else _bytes_of(self.shape, self.dtype)

    @property
    def is_quantized(self) -> bool:
        return len(self.scale) > 0

    @property
    def is_dynamic(self) -> bool:
        """A dimension is unknown until run time (-1 in the signature or the shape)."""
        return any(d < 0 for d in (*self.shape_signature, *self.shape))

    @property
    def dynamic_beyond_batch(self) -> bool:
        """Unknown in the shape itself, or in the signature on an axis other than the batch.

        A -1 batch in the signature with a concrete shape is what Keras models converted
        with ``batch_size=None`` carry: TFLite Micro and Vela use the shape and run batch 1.
        """
        return any(d < 0 for d in self.shape) or any(d < 0 for d in self.shape_signature[1:])

    @property
    def label(self) -> str:
        """How messages name it: its name, plus the subgraph when it is not the main one."""
        return self.name + _in_subgraph(self.subgraph)

    def to_dict(self) -> dict:
        return {
            "index": self.index, "name": self.name, "shape": list(self.shape),
            "shape_signature": list(self.shape_signature), "dynamic": self.is_dynamic,
            "dtype": self.dtype, "constant": self.is_constant, "bytes": self.nbytes,
            "scale": list(self.scale[:4]), "zero_point": list(self.zero_point[:4]),
            "per_channel": len(self.scale) > 1, "variable": self.is_variable, "subgraph": self.subgraph,
        }


@dataclass(frozen=True)
class Operator:
    """One operator: its builtin name and tensor indices (-1 = optional absent).

    ``subgraph`` is where it lives (its tensor indices refer to that subgraph);
    ``calls`` the subgraphs it runs (CALL_ONCE, WHILE, IF ...); ``variable`` the
    ``container/shared_name`` a VAR_HANDLE refers to.
    """

    index: int
    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    custom_code: str | None = None
    subgraph: int = 0
    calls: tuple[int, ...] = ()
    variable: str | None = None

    @property
    def label(self) -> str:
        """How messages name it: ``CONV_2D #3``, ``VAR_HANDLE #0 in subgraph 1``."""
        return f"{self.op} #{self.index}{_in_subgraph(self.subgraph)}"


class _Graph:
    """What a subgraph and the model's main view share: I/O tensors and producers by index."""

    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    @property
    def input_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.inputs]

    @property
    def output_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.outputs]

    def producers(self) -> dict[int, Operator]:
        """Tensor index -> the operator that writes it."""
        return {t: op for op in self.operators for t in op.outputs if t >= 0}


@dataclass(frozen=True)
class Subgraph(_Graph):
    """One subgraph: subgraph 0 is what the interpreter invokes, others are called from it."""

    index: int
    name: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class Variable:
    """State kept between invokes, so RAM for the whole inference, not an activation.

    ``kind`` is ``"resource"`` (VAR_HANDLE: the value's type and shape come from
    what ASSIGN_VARIABLE writes or READ_VARIABLE reads, in any subgraph) or
    ``"tensor"`` (a legacy ``is_variable`` tensor, e.g. an LSTM state).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    kind: str
    subgraph: int = 0

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "bytes": self.nbytes,
                "kind": self.kind, "subgraph": self.subgraph}


@dataclass(frozen=True)
class TfliteModel(_Graph):
    """A .tflite model: the main subgraph's view (``tensors`` ...), every subgraph, file facts."""

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
    subgraphs: tuple[Subgraph, ...] = ()  # () when built by hand: then the main subgraph alone
    signature: dict = field(default_factory=dict, compare=False)  # tensor index -> key, main subgraph's signature

    @property
    def input_names(self) -> list[str]:
        """Each input's name as users know it: its signature key (the Keras ``Input`` name), else the tensor name.

        The converter reorders inputs and outputs; these names, not positions, match them to data and to
        the Keras model (see :func:`io_name`).
        """
        return [self.signature.get(i) or io_name(self.tensors[i].name) for i in self.inputs]

    @property
    def output_names(self) -> list[str]:
        """Each output's signature key (the Keras output name when edgepipe converted it), else the tensor name."""
        return [self.signature.get(i) or io_name(self.tensors[i].name) for i in self.outputs]

    def __post_init__(self):
        if not self.subgraphs:
            main = Subgraph(0, "main", self.tensors, self.operators, self.inputs, self.outputs)
            object.__setattr__(self, "subgraphs", (main,))

    @cached_property
    def all_operators(self) -> tuple[Operator, ...]:
        """Every operator of every subgraph, subgraph by subgraph (each knows its ``subgraph``)."""
        return tuple(op for sg in self.subgraphs for op in sg.operators)

    @cached_property
    def op_counts(self) -> dict[str, int]:
        """Op name -> count over every subgraph: what an op resolver must register."""
        counts: dict[str, int] = {}
        for op in self.all_operators:
            counts[op.op] = counts.get(op.op, 0) + 1
        return dict(sorted(counts.items()))

    @cached_property
    def variables(self) -> tuple[Variable, ...]:
        """Resource variables (by name, across subgraphs), then legacy variable tensors."""
        return _resource_variables(self.subgraphs) + tuple(
            Variable(t.name, t.dtype, t.shape, _bytes_of(t.shape, t.dtype), "tensor", sg.index)
            for sg in self.subgraphs for t in sg.tensors if t.is_variable)

    @property
    def weight_bytes(self) -> int:
        """Constant bytes of every subgraph (an init subgraph's constants are flash too)."""
        return sum(t.buffer_bytes for sg in self.subgraphs for t in sg.tensors if t.is_constant)


def _resource_variables(subgraphs: tuple[Subgraph, ...]) -> tuple[Variable, ...]:
    """One entry per VAR_HANDLE name; the largest value seen for it sizes it (what RAM must hold)."""
    found: dict[str, Variable | None] = {}
    for sg in subgraphs:
        handles = {op.outputs[0]: op.variable for op in sg.operators
                   if op.variable is not None and op.outputs and op.outputs[0] >= 0}
        for name in handles.values():
            found.setdefault(name, None)
        for name, t in _variable_values(sg, handles):
            size = _bytes_of(t.shape, t.dtype)
            if found[name] is None or size > found[name].nbytes:
                found[name] = Variable(name, t.dtype, t.shape, size, "resource", sg.index)
    return tuple(v or Variable(name, "unknown", (), 0, "resource") for name, v in found.items())


def _variable_values(sg: Subgraph, handles: dict[int, str]):
    """(variable name, value tensor) for each ASSIGN_VARIABLE / READ_VARIABLE on a known handle."""
    for op in sg.operators:
        if op.op == "ASSIGN_VARIABLE" and len(op.inputs) >= 2:
            handle, value = op.inputs[0], op.inputs[1]
        elif op.op == "READ_VARIABLE" and op.inputs and op.outputs:
            handle, value = op.inputs[0], op.outputs[0]
        else:
            continue
        if handle in handles and value >= 0:
            yield handles[handle], sg.tensors[value]


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
    codes = tuple(_opcode(c) for c in model.operatorCodes or [])
    n_sg = len(model.subgraphs)
    subgraphs = tuple(_subgraph(k, sg, model.buffers or [], codes, n_sg, where, len(data))
                      for k, sg in enumerate(model.subgraphs))
    for sig in model.signatureDefs or []:
        _check_range(where, "signature subgraph indices", sig.subgraphIndex, 0, n_sg, "a signature def")
    main = subgraphs[0]
    signature = _signature_names(model.signatureDefs or [])
    desc = _text(model.description)
    sparse = any(t.sparsity is not None for sg in model.subgraphs for t in (sg.tensors or []))
    return TfliteModel(
        path=where, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
        tensors=main.tensors, operators=main.operators, inputs=main.inputs, outputs=main.outputs,
        subgraph_count=n_sg, description=desc, has_sparsity=sparse, data=bytes(data), subgraphs=subgraphs,
        signature=signature,
    )


def _signature_names(sigs: list) -> dict[int, str]:
    """Tensor index -> signature key of the main subgraph's first signature (``serving_default`` if present)."""
    main = [s for s in sigs if s.subgraphIndex == 0]
    if not main:
        return {}
    sig = next((s for s in main if _text(s.signatureKey) == "serving_default"), main[0])
    return {m.tensorIndex: _text(m.name) for m in (sig.inputs or []) + (sig.outputs or []) if _text(m.name)}


def io_name(tensor_name: str) -> str:
    """``serving_default_image:0`` -> ``image``: the name a user gave, without the converter's decoration."""
    name = tensor_name.split(":")[0]
    return name[len("serving_default_"):] if name.startswith("serving_default_") else name


def _subgraph(k: int, sg: schema.SubGraphT, buffers: list, codes: tuple, n_sg: int, where: str,
              size: int) -> Subgraph:
    """One subgraph, with every tensor, opcode, buffer and subgraph index checked against its table."""
    tensors = tuple(_tensor(k, i, t, buffers, where, size) for i, t in enumerate(sg.tensors or []))
    ops = tuple(_operator(k, i, op, codes, n_sg, where) for i, op in enumerate(sg.operators or []))
    n = len(tensors)
    for op in ops:
        for t in op.inputs + op.outputs:
            _check_range(where, "tensor indices", t, -1, n, f"{op.op} #{op.index} (subgraph {k})")
        _check_weight_rank(where, op, tensors)
    inputs, outputs = _ints(sg.inputs), _ints(sg.outputs)
    for role, indices in (("input", inputs), ("output", outputs)):
        for t in indices:
            _check_range(where, "tensor indices", t, 0, n, f"subgraph {k} {role} list")
    return Subgraph(k, _text(sg.name) or f"subgraph_{k}", tensors, ops, inputs, outputs)


def _check_range(where: str, what: str, value: int, lo: int, hi: int, user: str) -> None:
    """An index into a table must fall inside it; say which table, which user, which value."""
    if not lo <= value < hi:
        raise InputError(where, f"{what} in [{lo}, {hi})", f"{user} uses {value}",
                         "the file is corrupt or was written by a broken tool")


def _opcode(code: schema.OperatorCodeT) -> tuple[str, str | None]:
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    custom = _text(code.customCode) or None
    name = _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
    return (name if name != "CUSTOM" else f"CUSTOM:{custom}"), custom


def _operator(k: int, i: int, op: schema.OperatorT, codes: tuple, n_sg: int, where: str) -> Operator:
    _check_range(where, "opcode indices", op.opcodeIndex, 0, len(codes), f"operator #{i} (subgraph {k})")
    name, custom = codes[op.opcodeIndex]
    _check_options(where, f"{name} #{i}{_in_subgraph(k)}", op.builtinOptions)
    _check_operands(where, f"{name} #{i}{_in_subgraph(k)}", name, _ints(op.inputs))
    calls = _called_subgraphs(op)
    for target in calls:
        _check_range(where, "subgraph indices", target, 0, n_sg, f"{name} #{i} (subgraph {k})")
    return Operator(i, name, _ints(op.inputs), _ints(op.outputs), custom, subgraph=k, calls=calls,
                    variable=_variable_name(op.builtinOptions) if name == "VAR_HANDLE" else None)


def _called_subgraphs(op: schema.OperatorT) -> tuple[int, ...]:
    """Subgraph indices an op's options name (CALL_ONCE init, WHILE cond/body, IF branches ...)."""
    calls = []
    for opts in (op.builtinOptions, op.builtinOptions2):
        calls += [int(getattr(opts, f)) for f in _SUBGRAPH_FIELDS if hasattr(opts, f)]
        calls += [int(b) for b in getattr(opts, "branchSubgraphIndices", None) or ()]
    return tuple(calls)


def _variable_name(opts) -> str:
    """``container/shared_name`` (the runtime's key for a resource variable), or the shared name alone."""
    container, shared = _text(getattr(opts, "container", None)), _text(getattr(opts, "sharedName", None))
    return f"{container}/{shared}" if container else (shared or "<unnamed>")


#: Inputs that must be present (index >= 0) for ops whose work is read from them: their weights.
_REQUIRED_INPUTS = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "CONV_3D": 2, "FULLY_CONNECTED": 2,
                    "TRANSPOSE_CONV": 3, "BATCH_MATMUL": 2}


def _check_operands(where: str, user: str, name: str, inputs: tuple[int, ...]) -> None:
    """A weighted op has its input and its weights (ASSIGN_VARIABLE or CALL_ONCE may write nothing)."""
    need = _REQUIRED_INPUTS.get(name, 0)
    if len(inputs) < need or any(i < 0 for i in inputs[:need]):
        raise InputError(where, f"{user} with its first {need} inputs present", f"inputs {list(inputs)}",
                         "the file is corrupt or was written by a broken tool")


#: (weights input, its rank) of the ops whose work is read from their weights' shape.
_WEIGHT_RANK = {"CONV_2D": (1, 4), "DEPTHWISE_CONV_2D": (1, 4), "CONV_3D": (1, 5), "FULLY_CONNECTED": (1, 2),
                "TRANSPOSE_CONV": (1, 4)}


def _check_weight_rank(where: str, op: Operator, tensors: tuple) -> None:
    """Filters and FC weights have the rank their kernel reads (a rank-0 "weights" is a corrupt file)."""
    if op.op not in _WEIGHT_RANK:
        return
    slot, rank = _WEIGHT_RANK[op.op]
    t = tensors[op.inputs[slot]]
    if len(t.shape) != rank:
        raise InputError(where, f"{op.label} weights {t.name!r} of rank {rank}", f"shape {list(t.shape)}",
                         "the file is corrupt or was written by a broken tool")


def _check_options(where: str, user: str, opts) -> None:
    """Strides, dilations, filter sizes and multipliers must be at least 1 (kernels divide by them)."""
    for name in _POSITIVE_OPTIONS:
        value = getattr(opts, name, None)
        if value is not None and value < 1:
            raise InputError(where, f"{user} option {name} >= 1", str(value),
                             "the file is corrupt or was written by a broken tool")


def _tensor(k: int, index: int, t: schema.TensorT, buffers: list, where: str, size: int) -> Tensor:
    user = f"tensor {index}{f' {_text(t.name)!r}' if t.name else ''} (subgraph {k})"

    def bad(expected: str, found: str) -> InputError:
        return InputError(where, f"{user}: {expected}", found, "the file is corrupt or was written by a broken tool")

    _check_range(where, "buffer indices", t.buffer, 0, len(buffers), f"tensor {index} (subgraph {k})")
    if t.type not in _TYPE_NAMES:
        raise bad(f"a tensor type of the schema ({min(_TYPE_NAMES)}..{max(_TYPE_NAMES)})", f"type {t.type}")
    dtype = _TYPE_NAMES[t.type]
    shape, signature = _ints(t.shape), _ints(t.shapeSignature)
    if any(d < 0 for d in shape):
        raise bad("dimensions >= 0 (unknown ones are -1 in shape_signature only)", f"shape {list(shape)}")
    if signature and (len(signature) != len(shape) or any(d < -1 for d in signature)):
        raise bad(f"a shape_signature of rank {len(shape)} with dimensions >= -1", f"{list(signature)}")
    if math.prod(shape) > MAX_ELEMENTS:
        raise bad(f"at most {MAX_ELEMENTS} elements", f"shape {list(shape)}")
    buf = buffers[t.buffer] if t.buffer > 0 else None
    nbytes = _buffer_bytes(buf, size, bad)
    scale, zp = _quantization(t.quantization, shape, bad)
    needed = _needed_bytes(shape, dtype)
    if nbytes and t.sparsity is None and dtype not in _UNSIZED and nbytes < needed:
        raise bad(f"a buffer of {needed} bytes for shape {list(shape)} {dtype}", f"{nbytes} bytes")
    return Tensor(
        index=index, name=_text(t.name) or f"tensor_{index}", shape=shape,
        dtype=dtype, scale=scale, zero_point=zp, is_constant=nbytes > 0,
        buffer_bytes=nbytes, is_variable=bool(t.isVariable), shape_signature=signature, subgraph=k,
    )


def _buffer_bytes(buf, size: int, bad) -> int:
    """Bytes of a tensor's buffer: inline data, or a range after the flatbuffer (models over 2 GB)."""
    if buf is None:
        return 0
    if buf.offset > 1:
        if buf.offset + buf.size > size:
            raise bad(f"buffer data inside the file ({size} bytes)",
                      f"offset {buf.offset} + size {buf.size}")
        return int(buf.size)
    return int(len(buf.data)) if buf.data is not None else 0


def _needed_bytes(shape: tuple[int, ...], dtype: str) -> int:
    n = math.prod(shape)
    return (n + 1) // 2 if dtype == "int4" else n * _DTYPE_BYTES.get(dtype, 1)


def _quantization(q, shape: tuple[int, ...], bad) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """(scales, zero points), checked: finite positive scales, one zero point each, a valid channel axis."""
    scale = tuple(float(s) for s in (q.scale if q is not None and q.scale is not None else ()))
    zp = tuple(int(z) for z in (q.zeroPoint if q is not None and q.zeroPoint is not None else ()))
    if not scale:
        return scale, zp
    if not all(math.isfinite(s) and s > 0 for s in scale):
        raise bad("finite, positive quantization scales", f"{list(scale[:8])}")
    if len(zp) != len(scale):
        raise bad(f"one zero point per scale ({len(scale)})", f"{len(zp)} zero points")
    axis = q.quantizedDimension
    if axis < 0 or (len(scale) > 1 and not (axis < len(shape) and shape[axis] == len(scale))):
        raise bad(f"{len(scale)} per-channel scales along a dimension of that size",
                  f"quantized_dimension {axis} of shape {list(shape)}")
    return scale, zp


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def _ints(values) -> tuple[int, ...]:
    return tuple(int(v) for v in values) if values is not None else ()
