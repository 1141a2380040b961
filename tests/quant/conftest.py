"""Fixtures for the quantization-technique tests: tiny Keras models built in code, fixed seeds."""

from __future__ import annotations

import numpy as np
import pytest


def randomize_bn(model, seed: int = 1):
    """Non-trivial BatchNorm statistics, as a trained model has (a fresh BN is an identity)."""
    rng = np.random.RandomState(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.randn(n) * 0.2, rng.randn(n) * 0.2, rng.uniform(0.2, 3, n)])
    return model


@pytest.fixture(scope="session")
def ds_model(keras_mod):
    """Conv -> BN -> ReLU -> DW -> BN -> ReLU -> Conv1x1 -> ReLU -> SeparableConv -> ReLU6 -> Conv -> Dense."""
    keras, L = keras_mod, keras_mod.layers
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 1), name="image")
    x = L.ReLU(name="c1_relu")(L.BatchNormalization(name="c1_bn")(L.Conv2D(8, 3, name="c1")(inp)))
    x = L.ReLU(name="dw_relu")(L.BatchNormalization(name="dw_bn")(L.DepthwiseConv2D(3, name="dw")(x)))
    x = L.Conv2D(16, 1, activation="relu", name="pw")(x)
    x = L.SeparableConv2D(16, 3, name="sep")(x)
    x = L.ReLU(6.0, name="sep_relu6")(x)
    x = L.Conv2D(8, 1, name="after_relu6")(x)
    x = L.Flatten(name="flat")(x)
    out = L.Dense(10, activation="softmax", name="out")(x)
    model = keras.Model(inp, out, name="ds")
    for layer in model.layers:  # channel ranges that differ a lot, as trained depthwise layers have
        if type(layer).__name__ == "DepthwiseConv2D":
            k = layer.kernel.numpy()
            layer.kernel.assign(k * np.logspace(-2, 1, k.shape[2], dtype="float32")[None, None, :, None])
    return randomize_bn(model)


@pytest.fixture(scope="session")
def ds_samples():
    return np.random.RandomState(0).rand(64, 12, 12, 1).astype("float32")


@pytest.fixture(scope="session")
def fc_model(keras_mod):
    """An FC-only autoencoder-like model (as MLPerf Tiny's AD, smaller)."""
    keras, L = keras_mod, keras_mod.layers
    keras.utils.set_random_seed(0)
    inp = keras.Input((64,), name="x")
    h = L.Dense(48, activation="relu", name="e1")(inp)
    h = L.Dense(8, activation="relu", name="code")(h)
    h = L.Dense(48, activation="relu", name="d1")(h)
    return keras.Model(inp, L.Dense(64, name="recon")(h), name="ae")


@pytest.fixture(scope="session")
def fc_samples():
    return np.random.RandomState(1).randn(100, 64).astype("float32")


@pytest.fixture(scope="session")
def int8_io():
    from edgepipe.config.schema import IODtype, Scheme
    from edgepipe.keras_io.convert import ConvertSettings

    return ConvertSettings(Scheme.INT8, IODtype.INT8, IODtype.INT8, True, False)


@pytest.fixture(scope="session")
def checks_of():
    """checks_of(build_result) -> {check name: Check}."""
    return lambda result: {c.name: c for c in result.report.checks}
