"""What each operator of a .tflite asks of the hardware: MACs, outputs, bytes, and its kernel class.

MACs are exact for the ops that dominate CNNs and MLPs (convolutions, fully
connected, batch matmul, pools). Other ops are counted in *MAC-equivalents*
per output element (``WORK_PER_ELEMENT``): coarse weights that say an int8
ADD, which requantizes both inputs and its output, costs about as much as a
dozen MACs, while a ReLU costs about one. Bytes moved are the bytes of every
tensor the op reads (weights included) and writes.

The per-kernel cost model (:mod:`edgepipe.estimate.kernels`) needs more than
MACs, because the same MAC count runs at very different speeds: each op also
gets its **kernel class** (``conv``, ``conv_1x1``, ``conv_input`` for a first
layer with 1-3 input channels, ``depthwise``, ``fully_connected``, ...), the
length of the dimension its kernel vectorises over (``simd_dim``: a channel
count that is not a multiple of the SIMD width wastes lanes), its output
element count (requantization is paid per output), the elements an im2col
convolution copies (``patch``) and weight vs activation bytes. This module
decides the class of every op; what each class costs lives in the family
tables. See docs/latency.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from math import prod

from ai_edge_litert import schema_py_generated as schema

from edgepipe.tflite.model import Operator, TfliteModel

# MAC-equivalents per output element for ops without a multiply-accumulate core.
# 12 for int8 arithmetic with requantization (two input rescales + one output rescale,
# each a 32x32->64-bit multiply, shift and round: ~15-20 instructions on Cortex-M,
# ~44 cycles/element measured by ESP-NN's elementwise_add on ESP32-S3), 12 for the
# transcendental ones (LUT or fixed-point exp), 2 for clamps and (de)quantize,
# 0 for ops that only move data (their time is the bytes term).
WORK_PER_ELEMENT: dict[str, float] = {
    **dict.fromkeys(("ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM",
                     "ADD_N", "SELECT_V2"), 12.0),
    **dict.fromkeys(("SOFTMAX", "LOG_SOFTMAX", "LOGISTIC", "TANH", "EXP", "LOG", "GELU", "HARD_SWISH",
                     "ELU", "RSQRT", "SQRT", "L2_NORMALIZATION", "SIN", "COS"), 12.0),
    **dict.fromkeys(("RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "PRELU", "QUANTIZE", "DEQUANTIZE",
                     "ABS", "NEG", "CAST", "FLOOR", "CEIL", "ROUND"), 2.0),
    **dict.fromkeys(("RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CONCATENATION", "PAD", "PADV2", "MIRROR_PAD",
                     "TRANSPOSE", "STRIDED_SLICE", "SLICE", "GATHER", "GATHER_ND", "SPLIT", "SPLIT_V",
                     "PACK", "UNPACK", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "BATCH_TO_SPACE_ND",
                     "SPACE_TO_BATCH_ND", "BROADCAST_TO", "FILL", "ZEROS_LIKE", "SHAPE",
                     "RESIZE_NEAREST_NEIGHBOR", "REVERSE_V2"), 0.0),
    "RESIZE_BILINEAR": 4.0,
}
DEFAULT_WORK_PER_ELEMENT = 1.0
#: Kernel classes, in the order the cost tables list them.
KERNELS = ("conv", "conv_1x1", "conv_input", "depthwise", "fully_connected", "pool", "elementwise",
           "activation", "transcendental", "move", "other")
_CLASS_OF_WORK = {12.0: "elementwise", 2.0: "activation", 0.0: "move", 4.0: "other"}
_TRANSCENDENTAL = ("SOFTMAX", "LOG_SOFTMAX", "LOGISTIC", "TANH", "EXP", "LOG", "GELU", "HARD_SWISH", "ELU",
                   "RSQRT", "SQRT", "L2_NORMALIZATION", "SIN", "COS")
#: A convolution whose input has at most this many channels is a ``conv_input`` (RGB, grey, audio first layers).
INPUT_LAYER_CHANNELS = 3
_REDUCTIONS = ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "ARG_MAX", "ARG_MIN")
_POOLS = ("AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D")
_FLOAT = ("float32", "float16", "float64")


@dataclass(frozen=True)
class OpWorkload:
    """One op's demand. ``macs``: exact MACs or MAC-equivalents (``exact`` says which).

    ``kernel``: its class (:data:`KERNELS`); ``simd_dim``: the length of the dimension
    its kernel vectorises over; ``out_elems``: output elements; ``patch``: elements an
    im2col convolution copies (0 otherwise); ``weight_bytes``/``act_bytes`` split ``bytes``
    into constant (flash) and activation (RAM) traffic.
    """

    index: int
    op: str
    name: str
    macs: float
    bytes: int
    dtype: str
    exact: bool
    kernel: str = "other"
    simd_dim: int = 1
    out_elems: int = 0
    patch: int = 0
    weight_bytes: int = 0
    act_bytes: int = 0

    @property
    def is_float(self) -> bool:
        return self.dtype in _FLOAT

    def to_dict(self) -> dict:
        return asdict(self)


def op_workloads(model: TfliteModel) -> list[OpWorkload]:
    """MACs (or MAC-equivalents) and bytes moved for every op of the main subgraph."""
    options = _builtin_options(model)
    out = []
    for op in model.operators:
        macs, exact = _macs(model, op, options[op.index] if op.index < len(options) else None)
        ins = [model.tensors[i] for i in op.inputs if i >= 0]
        outs = [model.tensors[i] for i in op.outputs if i >= 0]
        acts = [t for t in ins if not t.is_constant] or ins
        weights = sum(t.nbytes for t in ins if t.is_constant)
        total = sum(t.nbytes for t in ins + outs)
        kernel, simd, patch = _kernel(model, op)
        out.append(OpWorkload(
            index=op.index, op=op.op, name=outs[0].name if outs else f"op{op.index}",
            macs=float(macs), bytes=total, dtype=acts[0].dtype if acts else "int8", exact=exact,
            kernel=kernel, simd_dim=simd, out_elems=prod(_shape(model, op.outputs[0])) if op.outputs else 0,
            patch=patch, weight_bytes=weights, act_bytes=total - weights,
        ))
    return out


def total_macs(model: TfliteModel) -> int:
    """Exact MACs of the MAC-bearing ops (what papers quote as a model's MACs)."""
    return int(sum(w.macs for w in op_workloads(model) if w.exact))


def _builtin_options(model: TfliteModel) -> list:
    try:
        parsed = schema.ModelT.InitFromPackedBuf(bytearray(model.data), 0)
        return [op.builtinOptions for op in (parsed.subgraphs[0].operators or [])]
    except Exception:  # noqa: BLE001 - options only refine pool sizes; absent means 1x1
        return []


def _shape(model: TfliteModel, index: int) -> tuple[int, ...]:
    return tuple(max(d, 1) for d in model.tensors[index].shape) if index >= 0 else ()


def _macs(model: TfliteModel, op: Operator, opts) -> tuple[float, bool]:
    out_elems = prod(_shape(model, op.outputs[0])) if op.outputs else 0
    name = op.op
    if name == "CONV_2D":  # filter [O, KH, KW, I/groups]
        return out_elems * prod(_shape(model, op.inputs[1])[1:]), True
    if name == "DEPTHWISE_CONV_2D":  # filter [1, KH, KW, O]
        f = _shape(model, op.inputs[1])
        return out_elems * f[1] * f[2], True
    if name == "CONV_3D":  # filter [KD, KH, KW, I, O]
        return out_elems * prod(_shape(model, op.inputs[1])[:-1]), True
    if name == "FULLY_CONNECTED":  # weights [units, in]
        return out_elems * _shape(model, op.inputs[1])[-1], True
    if name == "TRANSPOSE_CONV":  # inputs: output_shape, filter [O, KH, KW, I], input
        return prod(_shape(model, op.inputs[2])) * prod(_shape(model, op.inputs[1])[:3]), True
    if name == "BATCH_MATMUL":
        a = _shape(model, op.inputs[0])
        adj_x = bool(getattr(opts, "adjX", False))
        return out_elems * (a[-2] if adj_x and len(a) > 1 else a[-1] if a else 1), True
    if name in _POOLS:
        window = (getattr(opts, "filterWidth", 1) or 1) * (getattr(opts, "filterHeight", 1) or 1)
        return out_elems * window, True
    if name in _REDUCTIONS:
        return prod(_shape(model, op.inputs[0])), True
    return out_elems * WORK_PER_ELEMENT.get(name, DEFAULT_WORK_PER_ELEMENT), False


def _kernel(model: TfliteModel, op: Operator) -> tuple[str, int, int]:
    """(kernel class, SIMD dimension, im2col elements) of one op: the features its kernel's speed depends on.

    The SIMD dimension is what the optimized kernels vectorise over: the im2col row
    (KH x KW x Cin) of a convolution, the input channels of a 1x1 convolution or a
    fully connected layer, the channels of a depthwise convolution, the innermost
    axis of an elementwise op. The im2col count is what a patch-gathering kernel
    copies: KH x KW x Cin per output pixel of a convolution, KH x KW per output of a
    depthwise convolution (whether a family's kernel copies is its table's ``patch``).
    """
    name = op.op
    out = (_shape(model, op.outputs[0]) if op.outputs else ()) or (1,)  # a scalar output: one lane
    if name in ("CONV_2D", "CONV_3D", "TRANSPOSE_CONV"):
        f = _shape(model, op.inputs[1])
        cin, k = (f[-2], prod(f[:-1])) if name == "CONV_3D" else (f[-1], prod(f[1:]))
        cout = f[-1] if name == "CONV_3D" else f[0]
        pixels = prod(out) // max(cout, 1)
        if name == "CONV_2D" and f[1] == f[2] == 1:
            return "conv_1x1", cin, 0
        kind = "conv_input" if cin <= INPUT_LAYER_CHANNELS else "conv"
        return kind, k, pixels * k
    if name == "DEPTHWISE_CONV_2D":  # kernels that gather each output's taps into a buffer copy one element per MAC
        f = _shape(model, op.inputs[1])
        return "depthwise", f[-1], prod(out) * f[1] * f[2]
    if name in ("FULLY_CONNECTED", "BATCH_MATMUL"):
        return "fully_connected", _shape(model, op.inputs[1])[-1] if name == "FULLY_CONNECTED" else \
            _shape(model, op.inputs[0])[-1], 0
    if name in _POOLS or name in _REDUCTIONS:
        return "pool", out[-1], 0
    if name in _TRANSCENDENTAL:
        return "transcendental", out[-1], 0
    work = WORK_PER_ELEMENT.get(name, DEFAULT_WORK_PER_ELEMENT)
    return _CLASS_OF_WORK.get(work, "other"), out[-1], 0
