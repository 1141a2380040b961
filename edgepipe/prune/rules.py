"""What each kind of layer does to channels, and how it is narrowed.

A :class:`Rule` is the Keras counterpart of a Torch-Pruning "pruning
function": it says how the layer couples its input and output channels
(``kind``), which weight axes follow which channel vector (``weights``), and
which config key holds the width. Only exact, known classes get a rule: a
subclass of ``Conv2D`` may override ``call`` in ways no rule can know, so it
is treated as unknown, and an unknown layer keeps all its channels.

Weight specs map a variable name to ``(axis, vector)`` pairs, where vector is
``"in"`` (the layer's input channels), ``"out"`` (its output channels) or
``"mid"`` (a separable conv's depthwise output: input channels repeated
``depth_multiplier`` times).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import keras
from keras import layers as L

Spec = Mapping[str, tuple[tuple[int, str], ...]]

KERNEL_IN_OUT: Spec = {"kernel": ((-2, "in"), (-1, "out")), "bias": ((-1, "out"),)}
SEPARABLE: Spec = {
    "depthwise_kernel": ((-2, "in"),),
    "pointwise_kernel": ((-2, "mid"), (-1, "out")),
    "bias": ((-1, "out"),),
}
DEPTHWISE: Spec = {"kernel": ((-2, "in"),), "bias": ((-1, "out"),)}
BATCHNORM: Spec = {name: ((-1, "out"),) for name in ("gamma", "beta", "moving_mean", "moving_variance")}
PRELU: Spec = {"alpha": ((-1, "out"),)}

# Activations that act on each value alone: pruning a channel cannot change another.
ELEMENTWISE_ACTIVATIONS = frozenset(
    "celu elu exponential gelu hard_shrink hard_sigmoid hard_silu hard_tanh leaky_relu "
    "linear log_sigmoid mish relu relu6 selu sigmoid silu soft_shrink softplus softsign "
    "sparse_plus sparse_sigmoid squareplus tanh tanh_shrink threshold".split()
)

PRODUCERS = {L.Conv1D: "filters", L.Conv2D: "filters", L.Conv3D: "filters", L.Dense: "units"}
SEPARABLES = (L.SeparableConv1D, L.SeparableConv2D)
DEPTHWISES = (L.DepthwiseConv1D, L.DepthwiseConv2D)
PASSTHROUGH = tuple(
    getattr(L, name)
    for name in (
        "Dropout SpatialDropout1D SpatialDropout2D SpatialDropout3D GaussianNoise "
        "GaussianDropout AlphaDropout ActivityRegularization Identity ReLU LeakyReLU ELU "
        "MaxPooling1D MaxPooling2D MaxPooling3D AveragePooling1D AveragePooling2D "
        "AveragePooling3D GlobalAveragePooling1D GlobalAveragePooling2D "
        "GlobalAveragePooling3D GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D "
        "ZeroPadding1D ZeroPadding2D ZeroPadding3D UpSampling1D UpSampling2D UpSampling3D "
        "Cropping1D Cropping2D Cropping3D"
    ).split()
)
MERGES = (L.Add, L.Subtract, L.Multiply, L.Maximum, L.Minimum, L.Average)
MERGE_OPS = frozenset({"Add", "Subtract", "Multiply", "Maximum", "Minimum"})


@dataclass(frozen=True)
class Rule:
    """How one layer couples channels. ``kind`` is one of: producer (new output
    channels: Conv, Dense, SeparableConv), depthwise, channelwise (BN, PReLU:
    weights per channel), passthrough, merge, concat, flatten, reshape, unknown."""

    kind: str
    weights: Spec = field(default_factory=dict)
    config_key: str | None = None
    repeat: int = 1
    out_frozen: str | None = None
    reason: str | None = None

    @property
    def kernels(self) -> tuple[str, ...]:
        """Variables whose norms measure a channel's importance (not bias, not BN)."""
        return tuple(name for name in self.weights if "kernel" in name)


def unknown(reason: str) -> Rule:
    return Rule("unknown", reason=reason)


def rule_for(op, in_shapes: tuple[tuple, ...], tensor_args_only: bool) -> Rule:
    """The rule for one call of ``op`` with inputs of ``in_shapes``."""
    rank = len(in_shapes[0]) if in_shapes else 0
    if not isinstance(op, L.Layer):
        return _op_rule(op, tensor_args_only, rank)
    if getattr(op, "data_format", "channels_last") != "channels_last":
        return unknown("channels_first data format: the channel axis is not last")
    rule = _layer_rule(op, rank)
    if rule.weights and not {w.name for w in op.weights} <= set(rule.weights):
        found = sorted(w.name for w in op.weights)
        return unknown(f"unexpected variables {found} (quantized or LoRA layer?)")
    return rule


def _op_rule(op, tensor_args_only: bool, rank: int) -> Rule:
    name = type(op).__name__
    ours = type(op).__module__.startswith("keras.")
    if name in MERGE_OPS and ours and tensor_args_only:
        return Rule("merge")
    if name == "Transpose" and ours and tensor_args_only:
        axes = getattr(op, "axes", None)
        axes = tuple(a % rank for a in axes) if axes is not None and rank else None
        dims = axes[1:] if axes and axes[0] == 0 else None  # None: it moves the batch axis
        return permute_rule(dims, rank, "keras.ops.transpose")
    return unknown(f"keras operation {name!r} with no pruning rule")


def permute_rule(dims: tuple[int, ...] | None, rank: int, what: str) -> Rule:
    """A reordering of axes that leaves the channel axis last is exact to prune through.

    ``dims`` are the new order of the non-batch axes (1-based, as ``Permute``
    takes them). Moving H and W (or time) around carries each channel's values
    along unchanged, and channel ``c`` stays at position ``c`` of the last
    axis: the tensor is the same set of per-channel planes, so removing a
    channel before the permutation is removing it after. If the channel axis
    moves, positions of the last axis are no longer channels: kept whole.
    """
    if dims is None or len(dims) != rank - 1:
        return unknown(f"{what} that moves the batch axis or has no axes given (it reverses them)")
    if dims[-1] != rank - 1:
        return unknown(f"{what} {tuple(dims)} moves the channel axis off the last position")
    return Rule("passthrough")


def _layer_rule(layer, rank: int) -> Rule:
    cls = type(layer)
    if cls in PRODUCERS:
        if getattr(layer, "groups", 1) != 1:
            return unknown("grouped convolution")
        return _producer(layer, KERNEL_IN_OUT, PRODUCERS[cls])
    if cls in SEPARABLES:
        return _producer(layer, SEPARABLE, "filters", repeat=layer.depth_multiplier)
    if cls in DEPTHWISES:
        return Rule("depthwise", DEPTHWISE, repeat=layer.depth_multiplier)
    if cls is L.BatchNormalization:
        if layer.axis not in (-1, rank - 1):
            return unknown(f"normalises axis {layer.axis}, not the channel axis")
        return Rule("channelwise", BATCHNORM)
    if cls is L.PReLU:
        shared = layer.weights[0].shape[-1] == 1
        return Rule("passthrough") if shared else Rule("channelwise", PRELU)
    if cls is L.Activation:
        return _activation_rule(layer, Rule("passthrough"))
    if cls in PASSTHROUGH and not layer.weights:
        return Rule("passthrough")
    if cls in MERGES:
        return Rule("merge")
    if cls is L.Concatenate:
        channel_axis = layer.axis in (-1, rank - 1)
        return Rule("concat" if channel_axis else "merge")
    if cls is L.Permute:
        return permute_rule(tuple(layer.dims), rank, "Permute")
    if cls is L.Flatten:
        return Rule("flatten")
    if cls is L.Reshape:
        return Rule("reshape", config_key="target_shape")
    if isinstance(layer, keras.Model):
        return unknown("a nested subclassed model: its layers cannot be traced")
    return unknown(f"no pruning rule for {cls.__name__}")


def _producer(layer, spec: Spec, key: str, repeat: int = 1) -> Rule:
    mixing = _activation_rule(layer, None)
    reason = mixing.reason if mixing else None
    return Rule("producer", spec, config_key=key, repeat=repeat, out_frozen=reason)


def _activation_rule(layer, ok: Rule | None) -> Rule | None:
    name = getattr(layer.activation, "__name__", type(layer.activation).__name__)
    if name in ELEMENTWISE_ACTIVATIONS:
        return ok
    return unknown(f"activation {name!r} is not element-wise (it mixes channels)")

