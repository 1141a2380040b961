"""Helpers for the pruning tests: tiny models built in code, and the
reference a pruned model must match.

The reference: the ORIGINAL model with the input slices of every pruned
channel zeroed in the layers that mix channels (Conv, Dense, the pointwise
part of SeparableConv). Every path from a pruned channel to an output passes
through such a layer (everything in between is channel-wise, and channels
that reach outputs or unknown layers are frozen), so the pruned model must
compute exactly this function. The reference zeroes only consumers, never
producers, so a producer keeping other filters than its consumers read makes
the outputs differ.
"""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers as L  # noqa: E402

from edgepipe.prune.walk import leaf_layers  # noqa: E402

MIXING = {
    L.Conv1D: ("kernel", "in"),
    L.Conv2D: ("kernel", "in"),
    L.Dense: ("kernel", "in"),
    L.SeparableConv1D: ("pointwise_kernel", "mid"),
    L.SeparableConv2D: ("pointwise_kernel", "mid"),
}


@contextlib.contextmanager
def pruned_inputs_zeroed(model: keras.Model, result):
    """Temporarily zero, in ``model``, the input slices ``result`` removed."""
    layers, saved = leaf_layers(model), []
    for path, kept in result.kept_indices.items():
        name_vector = MIXING.get(type(layers[path]))
        if name_vector is None:
            continue
        variable = next(w for w in layers[path].weights if w.name == name_vector[0])
        value = np.array(variable.numpy())
        saved.append((variable, value.copy()))
        drop = np.setdiff1d(np.arange(value.shape[-2]), kept[name_vector[1]])
        value[..., drop, :] = 0.0
        variable.assign(value)
    try:
        yield
    finally:
        for variable, value in saved:
            variable.assign(value)


def outputs(model: keras.Model, x) -> list[np.ndarray]:
    out = model(x, training=False)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def assert_matches_reference(original: keras.Model, result, x, rtol: float = 1e-4) -> None:
    """Pruned outputs == original outputs with the pruned channels zeroed."""
    with pruned_inputs_zeroed(original, result):
        expected = outputs(original, x)
    for got, want in zip(outputs(result.model, x), expected, strict=True):
        scale = max(1e-3, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


def randomize_statistics(model: keras.Model, seed: int = 0) -> keras.Model:
    """Non-trivial BN statistics and biases, so zeroed channels are not zero by luck."""
    rng = np.random.default_rng(seed)
    for layer in leaf_layers(model).values():
        for w in layer.weights:
            if w.name in ("gamma", "moving_variance"):
                w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32"))
            elif w.name in ("beta", "moving_mean", "bias"):
                w.assign(rng.normal(0.0, 0.3, w.shape).astype("float32"))
    return model


def images(shape, n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")


def conv_bn_relu(x, filters: int, name: str, kernel: int = 3, strides: int = 1):
    conv = L.Conv1D if len(x.shape) == 3 else L.Conv2D
    x = conv(filters, kernel, strides=strides, padding="same", name=name)(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x)


def residual_net(input_shape=(12, 12, 3), width: int = 8, classes: int = 5) -> keras.Model:
    """stem -> [conv-bn-relu-conv-bn + identity] -> add -> GAP -> classifier."""
    inputs = keras.Input(input_shape)
    x = conv_bn_relu(inputs, width, "stem")
    y = conv_bn_relu(x, width, "res_a")
    y = L.Conv2D(width, 3, padding="same", name="res_b")(y)
    y = L.BatchNormalization(name="res_b_bn")(y)
    x = L.ReLU(name="res_out")(L.Add(name="res_add")([x, y]))
    x = conv_bn_relu(x, 2 * width, "widen", strides=2)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(classes, name="classifier")(x), name="residual")
