"""The target's latency of a pruning decision, estimated from the Keras layers before any conversion.

MACs are a poor proxy for time: on a Cortex-M with CMSIS-NN a 3x3 depthwise
layer pays a requantization for every 9 MACs and a first layer with one or
three input channels fills no SIMD vector, so at the same MACs they cost
several times a 64-channel 1x1 convolution. ``prune.target: {latency: F}``
therefore costs every decision with the target's own per-kernel model
(:mod:`edgepipe.estimate.kernels`, the one the build's latency check uses on
the ``.tflite``): each Keras call becomes the op(s) the converter will emit
(:func:`workloads`), with the widths the decision leaves, and the family's
table prices them. What the converter removes is left out: BatchNormalization
after a convolution or Dense is folded into its weights, ReLU/ReLU6 after one
is fused, Dropout disappears. Tests compare the result with
``estimate_latency`` of the converted model.

Profiles without a kernel family use their sustained rates; Ethos-U profiles
are costed with their CPU table (Vela's NPU estimate needs a compiled model),
and :attr:`LatencyCost.description` says so. The report's ``counted_as`` is
that description.
"""

from __future__ import annotations

from math import prod

from keras import layers as L

from edgepipe.estimate.workload import OpWorkload
from edgepipe.prune.rules import DEPTHWISES, SEPARABLES
from edgepipe.prune.stats import CONVS, TRANSPOSED, call_macs
from edgepipe.prune.walk import Call, elements, is_graph_model, nodes_in_order, require_graph

#: Layers the converter removes (inference-time no-ops).
VANISH = (L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D, L.GaussianNoise,
          L.GaussianDropout, L.AlphaDropout, L.ActivityRegularization, L.InputLayer)
#: Producers whose output a following BatchNormalization folds into and a ReLU fuses into.
FUSES_INTO = (*CONVS, *TRANSPOSED, *DEPTHWISES, *SEPARABLES, L.Dense)
MERGES = (L.Add, L.Subtract, L.Multiply, L.Maximum, L.Minimum, L.Average)
MOVES = {L.Flatten: "RESHAPE", L.Reshape: "RESHAPE", L.Permute: "TRANSPOSE", L.Concatenate: "CONCATENATION",
         L.ZeroPadding1D: "PAD", L.ZeroPadding2D: "PAD", L.Cropping1D: "STRIDED_SLICE",
         L.Cropping2D: "STRIDED_SLICE", L.UpSampling1D: "RESIZE_NEAREST_NEIGHBOR",
         L.UpSampling2D: "RESIZE_NEAREST_NEIGHBOR"}
FUSED_ACTIVATIONS = ("relu", "relu6", "linear")
INT8_BIAS = 4  # int32 bias per output channel


class LatencyCost:
    """Seconds of a decision on one target: ``seconds(calls)`` for the calls ``CostModel.calls`` gives."""

    def __init__(self, model, profile):
        self.profile = profile
        self._fused = fused_calls(model)
        self.description = describe(profile)

    def seconds(self, calls: list[Call]) -> float:
        return estimate(workloads(calls, self._fused), self.profile).seconds


def for_profile(model, profile) -> LatencyCost | None:
    """The latency model of ``profile`` for ``model``; None when the profile has no CPU cost model."""
    cm = profile.cost_model
    if not cm.kernels and not cm.int8_macs_per_second:
        return None
    return LatencyCost(model, profile)


def describe(profile) -> str:
    """What the allocation counted, in the report's words."""
    from edgepipe.config.schema import Runtime

    cm = profile.cost_model
    what = (f"{cm.kernels} per-kernel cost model" + (f" ({cm.core})" if cm.core else "")
            if cm.kernels else "sustained-rate cost model")
    text = (f"seconds estimated for {profile.name} by its {what}, from the Keras layers before conversion "
            "(BatchNormalization folded, ReLU fused)")
    if profile.runtime is Runtime.ETHOS_U:
        text += "; Ethos-U: the CPU kernel table stands in for Vela's NPU estimate, which needs a compiled model"
    return text


def estimate(loads: list[OpWorkload], profile):
    """The profile's CPU estimate of ``loads`` (kernel table, else sustained rates)."""
    from edgepipe.estimate.latency import kernel_model_latency, rate_model_latency

    if profile.cost_model.kernels:
        return kernel_model_latency(loads, profile)
    return rate_model_latency(loads, profile.cost_model, profile.name, profile.runtime.value)


def fused_calls(model, prefix: str = "") -> set[str]:
    """Paths of the calls the converter folds away: a BatchNormalization or a ReLU/ReLU6 whose input
    comes from a convolution or Dense (through a folded BatchNormalization), or a ReLU after a merge."""
    fused: set[str] = set()
    for node in nodes_in_order(require_graph(model)):
        op, path = node.operation, prefix + node.operation.name
        if is_graph_model(op):
            fused |= fused_calls(op, path + "/")
            continue
        if len(node.input_tensors) != 1:
            continue
        history = getattr(node.input_tensors[0], "_keras_history", None)
        source = getattr(history, "operation", None)
        source_path = prefix + getattr(source, "name", "")
        folded = isinstance(source, FUSES_INTO) or (isinstance(source, L.BatchNormalization) and source_path in fused)
        if isinstance(op, L.BatchNormalization) and folded:
            fused.add(path)
        elif _is_fusable_activation(op) and (folded or isinstance(source, MERGES)):
            fused.add(path)
    return fused


def _is_fusable_activation(op) -> bool:
    if isinstance(op, L.ReLU):
        return not op.negative_slope and not op.threshold and op.max_value in (None, 6.0)
    if isinstance(op, L.Activation):
        return getattr(op.activation, "__name__", "") in FUSED_ACTIVATIONS
    return False


def workloads(calls: list[Call], fused: set[str] = frozenset()) -> list[OpWorkload]:
    """The int8 ops the converter emits for ``calls`` (each with its pruned widths), in order."""
    loads: list[OpWorkload] = []
    for call in calls:
        if isinstance(call.op, VANISH) or call.path in fused or not call.out_shapes:
            continue
        for op, kernel, macs, exact, simd, patch, weights in _ops(call):
            out = elements(call.out_shapes[0])
            acts = sum(elements(s) for s in call.in_shapes) + out
            loads.append(OpWorkload(len(loads), op, call.path, float(macs), acts + weights, "int8", exact, kernel,
                                    max(int(simd), 1), out, int(patch), int(weights), acts))
    return loads


def _ops(call: Call) -> list[tuple]:
    """(op, kernel class, MACs, exact, SIMD dimension, im2col elements, weight bytes) per emitted op."""
    layer = call.op
    if isinstance(layer, (*CONVS, *TRANSPOSED, *DEPTHWISES, *SEPARABLES, L.Dense)):
        return [*_weighted(call), *_activation(call)]
    out = elements(call.out_shapes[0])
    width = call.out_shapes[0][-1] or 1
    if isinstance(layer, (L.MaxPooling1D, L.MaxPooling2D, L.AveragePooling1D, L.AveragePooling2D)):
        return [("POOL", "pool", out * prod(layer.pool_size), True, width, 0, 0)]
    if isinstance(layer, (L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalMaxPooling1D,
                          L.GlobalMaxPooling2D)):
        return [("MEAN", "pool", elements(call.in_shapes[0]), True, width, 0, 0)]
    if isinstance(layer, MERGES):
        return [(type(layer).__name__.upper(), "elementwise", 12.0 * out, False, width, 0, 0)] * max(
            len(call.in_shapes) - 1, 1)
    if isinstance(layer, L.BatchNormalization):  # not after a conv: MUL + ADD
        return [("MUL", "elementwise", 12.0 * out, False, width, 0, 0)] * 2
    if isinstance(layer, tuple(MOVES)):
        return [(MOVES[type(layer)], "move", 0.0, False, width, 0, 0)]
    if isinstance(layer, (L.Softmax,)) or _activation_name(layer) in ("softmax", "sigmoid", "tanh"):
        return [("SOFTMAX", "transcendental", 12.0 * out, False, width, 0, 0)]
    if isinstance(layer, (L.ReLU, L.Activation, L.LeakyReLU, L.PReLU)):
        return [("RELU", "activation", 2.0 * out, False, width, 0, 0)]
    return [(type(layer).__name__, "other", 1.0 * out, False, width, 0, 0)]


def _activation_name(layer) -> str:
    return getattr(getattr(layer, "activation", None), "__name__", "")


def _weighted(call: Call) -> list[tuple]:
    """Convolutions (one op; a separable one is a depthwise and a 1x1) and Dense."""
    layer, macs = call.op, call_macs(call)
    (ins, outs) = call.in_shapes[0], call.out_shapes[0]
    cin, cout, out = ins[-1] or 1, outs[-1] or 1, elements(outs)
    if isinstance(layer, L.Dense):
        return [("FULLY_CONNECTED", "fully_connected", macs, True, cin, 0, cin * cout + INT8_BIAS * cout)]
    taps = prod(layer.kernel_size)
    if isinstance(layer, SEPARABLES):
        mid = cin * layer.depth_multiplier
        pixels = out // cout
        return [("DEPTHWISE_CONV_2D", "depthwise", pixels * taps * mid, True, mid, pixels * mid * taps,
                 taps * mid + INT8_BIAS * mid),
                ("CONV_2D", "conv_1x1", pixels * mid * cout, True, mid, 0, mid * cout + INT8_BIAS * cout)]
    if isinstance(layer, DEPTHWISES):
        return [("DEPTHWISE_CONV_2D", "depthwise", macs, True, cout, out * taps, taps * cout + INT8_BIAS * cout)]
    k = taps * cin // getattr(layer, "groups", 1)
    weights = k * cout + INT8_BIAS * cout
    if taps == 1 and not isinstance(layer, TRANSPOSED):
        return [("CONV_2D", "conv_1x1", macs, True, cin, 0, weights)]
    from edgepipe.estimate.workload import INPUT_LAYER_CHANNELS

    kind = "conv_input" if cin <= INPUT_LAYER_CHANNELS else "conv"
    return [("CONV_2D", kind, macs, True, k, (out // cout) * k, weights)]


def _activation(call: Call) -> list[tuple]:
    """A weighted layer's own ``activation`` when the converter cannot fuse it (softmax, sigmoid, ...)."""
    name = _activation_name(call.op)
    if name in ("", *FUSED_ACTIVATIONS):
        return []
    out = elements(call.out_shapes[0])
    return [("SOFTMAX" if name == "softmax" else name.upper(), "transcendental", 12.0 * out, False,
             call.out_shapes[0][-1] or 1, 0, 0)]
