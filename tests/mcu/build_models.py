"""Build the tiny test models of tests/mcu into a folder (run as a script by conftest.py).

Runs in its own process so TensorFlow (and the converter's per-call memory leak)
stays out of the test process. Fixed seeds, batch 1, full-integer int8 with int8 I/O.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


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


def convert(model: keras.Model, mode: str) -> bytes:
    shape = tuple(model.inputs[0].shape[1:])
    rng = np.random.default_rng(0)
    c = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode in ("int8", "sparse"):
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "sparse":
            c.optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
        c.representative_dataset = lambda: ([rng.random((1, *shape), dtype=np.float32)] for _ in range(32))
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        c.inference_input_type = tf.int8
        c.inference_output_type = tf.int8
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
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, data in models.items():
        (out / f"{name}.tflite").write_bytes(data)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
