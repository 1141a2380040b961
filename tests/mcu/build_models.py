"""Build the tiny test models of tests/mcu into a folder (run as a script by conftest.py).

Runs in its own process so TensorFlow (and the converter's per-call memory leak)
stays out of the test process. Fixed seeds, batch 1, full-integer int8 with int8 I/O.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


class RingBuffer(keras.layers.Layer):
    """Streaming state: keeps the last ``frames - 1`` input frames in a variable between invokes."""

    def __init__(self, frames: int, **kwargs):
        super().__init__(**kwargs)
        self.frames = frames

    def build(self, shape):
        self.state = self.add_weight(shape=(1, self.frames - 1, shape[-1]), initializer="zeros",
                                     trainable=False, name="state")

    def call(self, x):
        s = keras.ops.concatenate([self.state, x], axis=1)
        self.state.assign(s[:, 1:, :])
        return s


def streaming() -> keras.Model:
    """A streaming keyword-spotter head: one 8-feature frame per invoke, a 5-frame ring buffer."""
    i = keras.Input((1, 8), batch_size=1)
    x = RingBuffer(5)(i)
    x = keras.layers.Conv1D(16, 3, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(i, keras.layers.Dense(4)(x))


def conv1d_wide() -> keras.Model:
    """A sensor Conv1D whose flattened features feed a 10,000-wide Dense input."""
    i = keras.Input((1250, 3), batch_size=1)
    x = keras.layers.Conv1D(8, 3, padding="same", activation="relu")(i)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    return keras.Model(i, keras.layers.Dense(4)(x))


def two_heads() -> keras.Model:
    """A detector-like model with two outputs (class scores and a box)."""
    i = keras.Input((16, 16, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, activation="relu")(i)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(i, [keras.layers.Dense(3, activation="softmax")(x), keras.layers.Dense(4)(x)])


def fc_autoencoder() -> keras.Model:
    """The shape of MLPerf Tiny's anomaly-detection reference: 640 -> 128x4 -> 8 -> 128x4 -> 640."""
    i = keras.Input((640,), batch_size=1)
    x = i
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = keras.layers.Dense(units)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    return keras.Model(i, keras.layers.Dense(640)(x))


def cnn(width: int) -> keras.Model:
    i = keras.Input((32, 32, 3), batch_size=1)
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(i)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    y = keras.layers.Conv2D(width, 1, activation="relu")(x)
    x = keras.layers.Add()([x, y])
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(10)(x)
    return keras.Model(i, keras.layers.Softmax()(x))


def mlp(activation: str) -> keras.Model:
    i = keras.Input((64,), batch_size=1)
    x = keras.layers.Dense(64, activation=activation)(i)
    return keras.Model(i, keras.layers.Dense(8)(x))


def convert_streaming(model: keras.Model) -> bytes:
    """Full int8 with the state variables quantized too (they live in a second, CALL_ONCE subgraph)."""
    shape = tuple(model.inputs[0].shape)
    with tempfile.TemporaryDirectory() as d:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", lambda t: model(t, training=False),
                             input_signature=[tf.TensorSpec(shape, tf.float32)])
        archive.write_out(d)
        c = tf.lite.TFLiteConverter.from_saved_model(d)
        c.experimental_enable_resource_variables = True
        c._experimental_variable_quantization = True
        return _full_int8(c, shape[1:]).convert()


def _full_int8(c, shape: tuple):
    rng = np.random.default_rng(0)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = lambda: ([rng.random((1, *shape), dtype=np.float32)] for _ in range(32))
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = tf.int8
    c.inference_output_type = tf.int8
    return c


def convert(model: keras.Model, mode: str) -> bytes:
    shape = tuple(model.inputs[0].shape[1:])
    c = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "uint8_out":  # int8 inside, a uint8 output (as microWakeWord's models ship)
        _full_int8(c, shape).inference_output_type = tf.uint8
        return c.convert()
    if mode in ("int8", "sparse"):
        _full_int8(c, shape)
        if mode == "sparse":
            c.optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    elif mode == "hybrid":
        c.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "float16":
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.target_spec.supported_types = [tf.float16]
    return c.convert()


def sparsify(model: keras.Model) -> keras.Model:
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            w, b = layer.get_weights()
            w[np.abs(w) < np.quantile(np.abs(w), 0.9)] = 0
            layer.set_weights([w, b])
    return model


def main(out: Path) -> None:
    keras.utils.set_random_seed(0)
    small, wide = cnn(8), cnn(16)
    gelu, relu = mlp("gelu"), mlp("relu")
    models = {
        "cnn_int8": convert(small, "int8"),
        "cnn_float": convert(small, "float"),
        "cnn_wide_int8": convert(wide, "int8"),
        "gelu_int8": convert(gelu, "int8"),
        "mlp_hybrid": convert(relu, "hybrid"),
        "mlp_float16": convert(relu, "float16"),
        "mlp_sparse": convert(sparsify(relu), "sparse"),
        "stream_int8": convert_streaming(streaming()),
        "conv1d_wide_int8": convert(conv1d_wide(), "int8"),
        "autoencoder_int8": convert(fc_autoencoder(), "int8"),
        "two_heads_int8": convert(two_heads(), "int8"),
        "cnn_uint8_out": convert(small, "uint8_out"),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, data in models.items():
        (out / f"{name}.tflite").write_bytes(data)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
