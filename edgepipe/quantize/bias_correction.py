"""Empirical bias correction (Nagel et al. 2019, "Data-Free Quantization", section 4.2; AIMET).

Why: rounding weights to int8 shifts each output channel's *mean* by
``eps @ E[x]`` (``eps``: the weight rounding error, ``E[x]``: the layer's mean
input per channel). Small per weight, it adds up over a layer's fan-in and
compounds through depth; a bias cannot remove the noise, but it can remove
the shift. ``E[x]`` is measured on representative samples with the float
model, per input channel (a conv's spatial positions pooled: zero padding at
the borders is ignored), and the weights are rounded as the converter will
(symmetric int8, one scale per output channel, or per tensor where the
target's FULLY_CONNECTED weights are per tensor).

The shift goes into the layer's own bias, or, for a layer without one, into
the beta of the BatchNormalization that alone reads its (linear) output. A
layer with neither is left alone. :func:`correct_biases` works on a copy.
"""

from __future__ import annotations

import numpy as np

_KINDS = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense")
_BATCH = 64


def correct_biases(model, samples: np.ndarray, per_tensor_dense: bool = False,
                   per_tensor: bool = False) -> tuple[object, list[str]]:
    """A copy of ``model`` with each correctable layer's bias shifted; and the names of those layers.

    Weights are rounded as the converter will: per output channel, or per tensor for Dense layers
    (``per_tensor_dense``) or for every layer (``per_tensor``: ``quantization.per_channel: false``)."""
    from edgepipe.quantize.equalize import copy_model
    from edgepipe.quantize.graph import layer_graph

    clone = copy_model(model)
    g = layer_graph(clone)
    if g is None or len(clone.inputs) != 1:
        return clone, []
    targets = [g.layers[n] for n in g.order if type(g.layers[n]).__name__ in _KINDS]
    carriers = {t.name: _carrier(g, t) for t in targets}
    targets = [t for t in targets if carriers[t.name] is not None]
    if not targets:
        return clone, []
    means = _input_means(clone, targets, samples)
    for layer, mean in zip(targets, means):
        shift = _shift(layer, mean, per_tensor_dense or per_tensor, per_tensor)
        _apply(carriers[layer.name], layer, shift)
    return clone, [t.name for t in targets]


def _carrier(g, layer):
    """Where the correction goes: ("bias", layer), ("bn", batchnorm), or None."""
    import keras

    if getattr(layer, "use_bias", False) and layer.bias is not None:
        return ("bias", layer)
    nxt = g.single_consumer(layer.name)
    linear = getattr(layer, "activation", None) in (None, keras.activations.linear)
    if nxt is not None and type(nxt).__name__ == "BatchNormalization" and linear and nxt.center:
        return ("bn", nxt)
    return None


def _input_means(model, targets, samples: np.ndarray) -> list[np.ndarray]:
    """Per-channel mean of each target layer's input over ``samples`` (the float model's activations)."""
    import keras

    probe = keras.Model(model.inputs, [t.input for t in targets])
    sums = [None] * len(targets)
    count = 0
    for i in range(0, len(samples), _BATCH):
        outs = probe([np.asarray(samples[i:i + _BATCH], "float32")], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for k, o in enumerate(outs):
            o = np.asarray(o)
            s = o.reshape(-1, o.shape[-1]).sum(axis=0) / (o.size // o.shape[-1]) * len(o)
            sums[k] = s if sums[k] is None else sums[k] + s
        count += len(outs[0])
    return [s / count for s in sums]


def fake_quant(w: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """``w`` rounded to symmetric int8 and back: one scale per slice along ``channel_axis`` (None: per tensor)."""
    if channel_axis is None:
        peak = np.abs(w).max()
        scale = peak / 127.0 if peak > 0 else 1.0
        return np.clip(np.round(w / scale), -127, 127) * scale
    moved = np.moveaxis(w, channel_axis, -1)
    peak = np.abs(moved).reshape(-1, moved.shape[-1]).max(axis=0)
    scale = np.where(peak > 0, peak / 127.0, 1.0)
    return np.moveaxis(np.clip(np.round(moved / scale), -127, 127) * scale, -1, channel_axis)


def _shift(layer, mean: np.ndarray, per_tensor_dense: bool, per_tensor: bool) -> np.ndarray:
    """E[quantized output] - E[float output], per output channel."""
    kind = type(layer).__name__
    if kind == "Dense":
        w = layer.kernel.numpy()
        return mean @ (fake_quant(w, None if per_tensor_dense else 1) - w)
    if kind == "Conv2D":
        w = layer.kernel.numpy()
        return np.einsum("hwio,i->o", fake_quant(w, None if per_tensor else 3) - w, mean)
    if kind == "DepthwiseConv2D":
        return _depthwise_shift(layer.kernel.numpy(), mean, per_tensor)[1]
    mid_q, mid_f = _depthwise_shift(layer.depthwise_kernel.numpy(), mean, per_tensor, means_too=True)  # Separable
    pw = layer.pointwise_kernel.numpy()[0, 0]
    return mid_q @ fake_quant(pw, None if per_tensor else 1) - mid_f @ pw


def _depthwise_shift(w: np.ndarray, mean: np.ndarray, per_tensor: bool, means_too: bool = False):
    """A depthwise kernel (h, w, c, m) has output channel c * m + k, each with its own scale.

    Returns (E[quantized out], shift) or, with ``means_too``, (E[quantized out], E[float out])."""
    h, k, c, m = w.shape
    flat = w.reshape(h, k, c * m)
    rep = np.repeat(mean, m)
    out_f = np.einsum("hwo,o->o", flat, rep)
    out_q = np.einsum("hwo,o->o", fake_quant(flat, None if per_tensor else 2), rep)
    return (out_q, out_f) if means_too else (out_q, out_q - out_f)


def _apply(carrier, layer, shift: np.ndarray) -> None:
    kind, target = carrier
    if kind == "bias":
        target.bias.assign((target.bias.numpy() - shift).astype("float32"))
        return
    bn = target
    gamma = bn.gamma.numpy() if bn.scale else np.ones_like(shift)
    f = gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    bn.beta.assign((bn.beta.numpy() - shift * f).astype("float32"))
