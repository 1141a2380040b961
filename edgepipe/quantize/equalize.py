"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization"; AIMET's CLE).

Why: int8 activations have one scale per tensor. When a depthwise (or any)
conv's output channels span very different ranges, the small channels get
few levels and drown; the next conv's weights then mix badly scaled inputs.
Scaling output channel ``i`` of the first layer by ``1/s_i`` and input channel
``i`` of the second by ``s_i`` leaves the float model unchanged (a ReLU
commutes with a positive scale) and, with ``s_i = sqrt(r1_i * r2_i) / r2_i``
(``r1``, ``r2``: the channel's weight ranges in each layer), gives both the
same range per channel.

Pairs: Conv2D / DepthwiseConv2D / SeparableConv2D / Dense -> [BatchNormalization]
-> [ReLU] (-> [Dropout]) -> Conv2D / DepthwiseConv2D / SeparableConv2D / Dense, each link the
only reader of the one before; and the depthwise -> pointwise pair inside
every SeparableConv2D (nothing between them). A BatchNormalization is folded
into the layer before it first (its weights become an identity plus a bias).
ReLU6 (any clipped ReLU) is not a link: clipping at 6 does not commute with
scaling (AIMET replaces it by ReLU, which changes the float model).

One change to the paper: ``s_i >= 1`` (a channel of the first layer is only
ever shrunk). A channel whose weights are near zero but whose bias is not
(common after BN folding) would get ``s_i << 1``, its constant output would
grow by ``1/s_i`` and stretch the whole tensor's int8 range: on MLPerf Tiny's
VWW MobileNet the int8 output SQNR fell from 33 to 4.5 dB. Nagel et al. move
such biases into the next layer ("high bias absorption"); clamping is simpler
and measured: 33.0 -> 36.4 dB with per-channel weights, 29.1 -> 32.9 dB per tensor.

:func:`equalize` works on a copy; the original model is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_ITERATIONS = 4
#: Lower bound on a channel's scale s_i (first layer divided by it).
MIN_SCALE = 1.0
_CONVS = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense")
_IDENTITY = ("Dropout", "SpatialDropout2D", "GaussianNoise")  # identities at inference


@dataclass(frozen=True)
class Pair:
    first: str
    second: str
    between: tuple[str, ...]  # the BatchNormalization / ReLU layers linking them

    def to_dict(self) -> dict:
        return {"first": self.first, "second": self.second, "between": list(self.between)}


def copy_model(model):
    """A functional copy of ``model`` with the same weights (so transforms never touch the original)."""
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def find_pairs(model) -> list[Pair]:
    """The equalizable pairs of ``model`` (empty when its graph cannot be walked)."""
    from edgepipe.quantize.graph import layer_graph

    g = layer_graph(model)
    if g is None:
        return []
    pairs = [Pair(n, n, ()) for n in g.order if _kind(g.layers[n]) == "SeparableConv2D" and _mult(g.layers[n]) == 1]
    for name in g.order:
        first = g.layers[name]
        if _kind(first) not in _CONVS or not _out_channels_ok(first):
            continue
        between, cur = [], first
        while True:
            nxt = g.single_consumer(cur.name)
            if nxt is None or g.only_input(nxt.name) is not cur:
                break
            if _kind(nxt) == "BatchNormalization" and not between and _linear(first):
                between.append(nxt.name)
            elif _is_relu(nxt) and not any(_is_relu(g.layers[b]) for b in between) and not _relu_act(first):
                between.append(nxt.name)
            elif _kind(nxt) in _IDENTITY:
                between.append(nxt.name)
            elif _kind(nxt) in _CONVS and _in_channels_ok(nxt):
                pairs.append(Pair(first.name, nxt.name, tuple(between)))
                break
            else:
                break
            cur = nxt
    return pairs


def equalize(model) -> tuple[object, list[Pair]]:
    """A copy of ``model`` with every pair equalized (BNs between them folded first), and the pairs."""
    clone = copy_model(model)
    pairs = find_pairs(clone)
    layers = {layer.name: layer for layer in clone.layers}
    pairs = [p for p in pairs if all(_fold_bn(layers[p.first], layers[b]) for b in p.between
                                     if _kind(layers[b]) == "BatchNormalization")]
    for _ in range(_ITERATIONS):
        for p in pairs:
            _equalize_pair(layers, p)
    return clone, pairs


def _kind(layer) -> str:
    return type(layer).__name__


def _mult(layer) -> int:
    return int(getattr(layer, "depth_multiplier", 1))


def _linear(layer) -> bool:
    import keras

    return getattr(layer, "activation", None) in (None, keras.activations.linear)


def _relu_act(layer) -> bool:
    import keras

    return getattr(layer, "activation", None) is keras.activations.relu


def _is_relu(layer) -> bool:
    import keras

    if _kind(layer) == "ReLU":
        return layer.max_value is None and float(layer.negative_slope) == 0 and float(layer.threshold) == 0
    return _kind(layer) == "Activation" and layer.activation is keras.activations.relu


def _out_channels_ok(layer) -> bool:
    """Its output channel i is one slice of its weights (and its activation is linear or ReLU)."""
    if not (_linear(layer) or _relu_act(layer)):
        return False
    return _mult(layer) == 1 and int(getattr(layer, "groups", 1)) == 1


def _in_channels_ok(layer) -> bool:
    return int(getattr(layer, "groups", 1)) == 1 and (_kind(layer) != "DepthwiseConv2D" or _mult(layer) == 1)


def _out_kernel(layer):
    """(variable, axis) of the kernel whose last axis is the layer's output channel."""
    if _kind(layer) == "SeparableConv2D":
        return layer.pointwise_kernel
    return layer.kernel


def _out_range(kernel: np.ndarray, depthwise: bool) -> np.ndarray:
    k = kernel[..., 0] if depthwise else kernel
    return np.abs(k).reshape(-1, k.shape[-1]).max(axis=0)


def _in_kernel(layer):
    """The kernel of ``layer`` indexed by its input channel, and that channel's axis."""
    if _kind(layer) == "SeparableConv2D":
        return layer.depthwise_kernel, 2
    if _kind(layer) == "Dense":
        return layer.kernel, 0
    return layer.kernel, 2


def _in_range(kernel: np.ndarray, axis: int) -> np.ndarray:
    moved = np.moveaxis(np.abs(kernel), axis, 0)
    return moved.reshape(moved.shape[0], -1).max(axis=1)


def _equalize_pair(layers: dict, p: Pair) -> None:
    first, second = layers[p.first], layers[p.second]
    if p.first == p.second:  # inside a SeparableConv2D: depthwise -> pointwise
        out_var, dw, (in_var, axis) = first.depthwise_kernel, True, (first.pointwise_kernel, 2)
    else:
        out_var, dw, (in_var, axis) = _out_kernel(first), _kind(first) == "DepthwiseConv2D", _in_kernel(second)
    w1, w2 = np.asarray(out_var.numpy()), np.asarray(in_var.numpy())
    r1, r2 = _out_range(w1, dw), _in_range(w2, axis)
    s = np.ones_like(r1)
    ok = (r1 > 0) & (r2 > 0)
    s[ok] = np.sqrt(r1[ok] * r2[ok]) / r2[ok]
    s = np.maximum(s, MIN_SCALE)  # never grow a channel of the first layer: see the module docstring
    out_var.assign((w1 / (s[:, None] if dw else s)).astype(w1.dtype))
    shape = [1] * w2.ndim
    shape[axis] = -1
    in_var.assign((w2 * s.reshape(shape)).astype(w2.dtype))
    if p.first != p.second:
        _scale_bias(layers, first, p.between, s)


def _scale_bias(layers: dict, first, between: tuple[str, ...], s: np.ndarray) -> None:
    """Divide the bias of output channel i by s_i: the layer's own, and a folded BN's beta."""
    if getattr(first, "use_bias", False) and first.bias is not None:
        first.bias.assign((first.bias.numpy() / s).astype("float32"))
    for b in between:
        bn = layers[b]
        if _kind(bn) == "BatchNormalization":
            bn.beta.assign((bn.beta.numpy() / s).astype("float32"))


def _fold_bn(conv, bn) -> bool:
    """Fold ``bn`` into ``conv``'s kernel; ``bn`` keeps only the bias (gamma 1, mean 0, variance 1 - eps).

    False (nothing changed) when ``bn`` has no beta or gamma to carry the result."""
    if not (bn.center and bn.scale):
        return False
    gamma, beta = bn.gamma.numpy(), bn.beta.numpy()
    mean, var = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    f = gamma / np.sqrt(var + bn.epsilon)
    var_out = _kind(conv) == "DepthwiseConv2D"
    kernel = _out_kernel(conv)
    w = kernel.numpy()
    kernel.assign((w * (f[:, None] if var_out else f)).astype(w.dtype))
    bias = conv.bias.numpy() if getattr(conv, "use_bias", False) and conv.bias is not None else 0.0
    bn.beta.assign(((bias - mean) * f + beta).astype("float32"))
    bn.gamma.assign(np.ones_like(gamma))
    if getattr(conv, "use_bias", False) and conv.bias is not None:
        conv.bias.assign(np.zeros_like(conv.bias.numpy()))
    bn.moving_mean.assign(np.zeros_like(mean))
    bn.moving_variance.assign(np.full_like(var, 1.0 - bn.epsilon))
    return True
