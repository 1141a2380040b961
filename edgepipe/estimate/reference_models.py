"""The published benchmark models, rebuilt as .tflite files with zero weights, without TensorFlow.

The calibration of the latency tables (:mod:`edgepipe.estimate.calibrate`) and
``benchmarks/latency_mlperf.py`` estimate the very models the published
measurements ran. Latency depends on the operators and their shapes, not on the
weight values, so each model is rebuilt here layer by layer (same ops, same
shapes, same order, int8 activations and weights, int32 biases) and written as a
real flatbuffer that :func:`edgepipe.tflite.model.parse_tflite` reads like any
other. Nothing is downloaded; the originals' op lists were compared op by op
with these (see docs/latency.md, "Reference models").

- ``kws``, ``vww``, ``ic``, ``ad``: the MLPerf Tiny reference models
  (``benchmark/training/*/trained_models`` of github.com/mlcommons/tiny:
  DS-CNN, MobileNetV1-0.25 96x96x3, ResNet-8, FC autoencoder).
- ``person_detect``: TFLite Micro's person detection model (MobileNetV1-0.25,
  96x96x1, a 1x1 convolution as classifier), the model of esp-tflite-micro's
  published ESP32-S3 timings.
- ``mobilenet_v1``, ``mobilenet_v2``: the 1.0x 224x224 ImageNet models of
  XNNPACK's published Raspberry Pi 4 and Pixel 3a timings (float32).
- ``espnn_*``: single kernels of the ESP-NN README's ESP32-S3 table.
"""

from __future__ import annotations

from functools import cache
from math import ceil, prod

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgepipe.tflite.model import TfliteModel, parse_tflite

_BYTES = {"int8": 1, "int32": 4, "float32": 4}
_TYPES = {"int8": schema.TensorType.INT8, "int32": schema.TensorType.INT32, "float32": schema.TensorType.FLOAT32}


class _Graph:
    """A one-subgraph model under construction: tensors by shape, ops in execution order."""

    def __init__(self, dtype: str):
        self.dtype = dtype
        self.bias = "int32" if dtype == "int8" else "float32"
        self.tensors: list[schema.TensorT] = []
        self.buffers: list[schema.BufferT] = [schema.BufferT()]
        self.ops: list[schema.OperatorT] = []
        self.codes: dict[int, int] = {}
        self.shapes: list[tuple[int, ...]] = []

    def tensor(self, shape: tuple[int, ...], dtype: str | None = None, const: bool = False) -> int:
        dtype = dtype or self.dtype
        t = schema.TensorT()
        t.shape, t.type, t.name = list(shape), _TYPES[dtype], f"t{len(self.tensors)}"
        t.buffer = 0
        if const:
            buf = schema.BufferT()
            buf.data = np.zeros(prod(shape) * _BYTES[dtype], np.uint8)  # packed as one vector, not byte by byte
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        self.shapes.append(tuple(shape))
        return len(self.tensors) - 1

    def op(self, code: int, inputs: list[int], out_shape: tuple[int, ...], options_type: int = 0,
           options=None) -> int:
        out = self.tensor(out_shape)
        o = schema.OperatorT()
        o.opcodeIndex = self.codes.setdefault(code, len(self.codes))
        o.inputs, o.outputs = inputs, [out]
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.ops.append(o)
        return out

    def conv(self, x: int, cout: int, kh: int, kw: int | None = None, stride: int = 1, same: bool = True) -> int:
        """CONV_2D, padding SAME unless ``same`` is false (VALID)."""
        kw = kw or kh
        _, h, w, cin = self.shapes[x]
        opts = schema.Conv2DOptionsT()
        opts.padding = schema.Padding.SAME if same else schema.Padding.VALID
        opts.strideW = opts.strideH = stride
        opts.dilationWFactor = opts.dilationHFactor = 1
        weights = self.tensor((cout, kh, kw, cin), const=True)
        bias = self.tensor((cout,), self.bias, const=True)
        out = (1, *_out_hw(h, w, kh, kw, stride, same), cout)
        return self.op(schema.BuiltinOperator.CONV_2D, [x, weights, bias], out, schema.BuiltinOptions.Conv2DOptions,
                       opts)

    def depthwise(self, x: int, stride: int = 1, same: bool = True) -> int:
        """DEPTHWISE_CONV_2D 3x3, depth multiplier 1."""
        _, h, w, c = self.shapes[x]
        opts = schema.DepthwiseConv2DOptionsT()
        opts.padding = schema.Padding.SAME if same else schema.Padding.VALID
        opts.strideW = opts.strideH = stride
        opts.depthMultiplier = opts.dilationWFactor = opts.dilationHFactor = 1
        weights = self.tensor((1, 3, 3, c), const=True)
        bias = self.tensor((c,), self.bias, const=True)
        return self.op(schema.BuiltinOperator.DEPTHWISE_CONV_2D, [x, weights, bias],
                       (1, *_out_hw(h, w, 3, 3, stride, same), c), schema.BuiltinOptions.DepthwiseConv2DOptions, opts)

    def fully_connected(self, x: int, units: int) -> int:
        depth = self.shapes[x][-1]
        weights = self.tensor((units, depth), const=True)
        bias = self.tensor((units,), self.bias, const=True)
        return self.op(schema.BuiltinOperator.FULLY_CONNECTED, [x, weights, bias], (1, units),
                       schema.BuiltinOptions.FullyConnectedOptions, schema.FullyConnectedOptionsT())

    def add(self, a: int, b: int) -> int:
        return self.op(schema.BuiltinOperator.ADD, [a, b], self.shapes[a], schema.BuiltinOptions.AddOptions,
                       schema.AddOptionsT())

    def global_pool(self, x: int) -> int:
        _, h, w, c = self.shapes[x]
        opts = schema.Pool2DOptionsT()
        opts.padding, opts.strideW, opts.strideH, opts.filterWidth, opts.filterHeight = (
            schema.Padding.VALID, w, h, w, h)
        return self.op(schema.BuiltinOperator.AVERAGE_POOL_2D, [x], (1, 1, 1, c),
                       schema.BuiltinOptions.Pool2DOptions, opts)

    def flatten(self, x: int) -> int:
        shape = self.tensor((2,), "int32", const=True)
        return self.op(schema.BuiltinOperator.RESHAPE, [x, shape], (1, self.shapes[x][-1]),
                       schema.BuiltinOptions.ReshapeOptions, schema.ReshapeOptionsT())

    def softmax(self, x: int) -> int:
        opts = schema.SoftmaxOptionsT()
        opts.beta = 1.0
        return self.op(schema.BuiltinOperator.SOFTMAX, [x], self.shapes[x], schema.BuiltinOptions.SoftmaxOptions, opts)

    def finish(self, inp: int, out: int) -> bytes:
        sg = schema.SubGraphT()
        sg.tensors, sg.operators, sg.inputs, sg.outputs = self.tensors, self.ops, [inp], [out]
        model = schema.ModelT()
        model.version, model.subgraphs, model.buffers = 3, [sg], self.buffers
        model.operatorCodes = []
        for code, _ in sorted(self.codes.items(), key=lambda kv: kv[1]):
            oc = schema.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
            model.operatorCodes.append(oc)
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def _out_hw(h: int, w: int, kh: int, kw: int, stride: int, same: bool) -> tuple[int, int]:
    if same:
        return ceil(h / stride), ceil(w / stride)
    return (h - kh) // stride + 1, (w - kw) // stride + 1


def _mobilenet_v1(g: _Graph, x: int, alpha: float) -> int:
    """Conv 3x3/2, then 13 depthwise-separable blocks (channels 64 ... 1024 at alpha 1)."""
    x = g.conv(x, int(32 * alpha), 3, stride=2)
    for stride, ch in ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512), (1, 512),
                       (1, 512), (1, 512), (2, 1024), (1, 1024)):
        x = g.conv(g.depthwise(x, stride), int(ch * alpha), 1)
    return g.global_pool(x)


def _kws(g: _Graph) -> tuple[int, int]:
    inp = g.tensor((1, 49, 10, 1))
    x = g.conv(inp, 64, 10, 4, stride=2)
    for _ in range(4):
        x = g.conv(g.depthwise(x), 64, 1)
    return inp, g.softmax(g.fully_connected(g.flatten(g.global_pool(x)), 12))


def _vww(g: _Graph) -> tuple[int, int]:
    inp = g.tensor((1, 96, 96, 3))
    x = _mobilenet_v1(g, inp, 0.25)
    return inp, g.softmax(g.fully_connected(g.flatten(x), 2))


def _person_detect(g: _Graph) -> tuple[int, int]:
    inp = g.tensor((1, 96, 96, 1))
    x = _mobilenet_v1(g, inp, 0.25)
    return inp, g.softmax(g.flatten(g.conv(x, 2, 1)))


def _ic(g: _Graph) -> tuple[int, int]:
    """ResNet-8: a 3x3 stem, three residual stacks (16, 32, 64 channels), 1x1 stride-2 shortcuts."""
    inp = g.tensor((1, 32, 32, 3))
    x = g.conv(inp, 16, 3)
    y = g.conv(g.conv(x, 16, 3), 16, 3)
    x = g.add(x, y)
    for ch in (32, 64):
        y = g.conv(g.conv(x, ch, 3, stride=2), ch, 3)
        x = g.add(g.conv(x, ch, 1, stride=2), y)
    return inp, g.softmax(g.fully_connected(g.flatten(g.global_pool(x)), 10))


def _ad(g: _Graph) -> tuple[int, int]:
    inp = x = g.tensor((1, 640))
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128, 640):
        x = g.fully_connected(x, units)
    return inp, x


def _mobilenet_v1_224(g: _Graph) -> tuple[int, int]:
    inp = g.tensor((1, 224, 224, 3))
    x = _mobilenet_v1(g, inp, 1.0)
    return inp, g.softmax(g.flatten(g.conv(x, 1000, 1)))


def _mobilenet_v2_224(g: _Graph) -> tuple[int, int]:
    """Inverted residual blocks (expansion t, channels c, repeats n, first stride s) of the 1.0x model."""
    inp = g.tensor((1, 224, 224, 3))
    x = g.conv(inp, 32, 3, stride=2)
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)):
        for i in range(n):
            cin = g.shapes[x][-1]
            y = g.conv(x, cin * t, 1) if t != 1 else x
            y = g.conv(g.depthwise(y, s if i == 0 else 1), c, 1)
            x = g.add(x, y) if i > 0 else y
    x = g.global_pool(g.conv(x, 1280, 1))
    return inp, g.softmax(g.flatten(g.conv(x, 1000, 1)))


def _single(shape: tuple[int, ...], layer) -> callable:
    """A one-kernel model, for published per-kernel timings."""
    def build(g: _Graph) -> tuple[int, int]:
        inp = g.tensor(shape)
        return inp, layer(g, inp)
    return build


#: ESP-NN README kernel rows (ESP32-S3): pad 0, stride 1.
_KERNEL_BUILDERS = {
    "espnn_conv1x1_64": _single((1, 10, 10, 64), lambda g, x: g.conv(x, 64, 1, same=False)),
    "espnn_conv1x1_16": _single((1, 8, 8, 16), lambda g, x: g.conv(x, 16, 1, same=False)),
    "espnn_conv3x3_3": _single((1, 8, 8, 3), lambda g, x: g.conv(x, 64, 3, same=False)),
    "espnn_dw3x3_16": _single((1, 18, 18, 16), lambda g, x: g.depthwise(x, same=False)),
    "espnn_fc_271": _single((1, 271), lambda g, x: g.fully_connected(x, 3)),
}

_BUILDERS = {"kws": _kws, "vww": _vww, "ic": _ic, "ad": _ad, "person_detect": _person_detect,
             "mobilenet_v1": _mobilenet_v1_224, "mobilenet_v2": _mobilenet_v2_224, **_KERNEL_BUILDERS}
#: Total exact MACs of the originals (``total_macs`` of the published .tflite files).
PUBLISHED_MACS = {"kws": 2_664_768, "vww": 7_491_968, "ic": 12_505_728, "ad": 264_192}


def names() -> tuple[str, ...]:
    return tuple(_BUILDERS)


@cache
def reference_model(name: str, dtype: str = "int8") -> TfliteModel:
    """The rebuilt model ``name`` (see :func:`names`), int8 or float32, parsed like any .tflite."""
    if name not in _BUILDERS:
        from edgepipe.errors import UnknownNameError

        raise UnknownNameError("reference model", name, tuple(_BUILDERS))
    g = _Graph(dtype)
    inp, out = _BUILDERS[name](g)
    return parse_tflite(g.finish(inp, out), f"<reference model {name} ({dtype})>")
