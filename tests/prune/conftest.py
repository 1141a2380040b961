"""Fixtures for the pruning tests (helpers live in prune_helpers.py)."""

from __future__ import annotations

import keras
import pytest
from prune_helpers import randomize_statistics, residual_net


@pytest.fixture(scope="module")
def residual_model() -> keras.Model:
    keras.utils.set_random_seed(1)
    return randomize_statistics(residual_net(), seed=1)


@pytest.fixture(scope="session")
def digit_split():
    """sklearn's bundled 8x8 digits: (x_train, y_train), (x_eval, y_eval)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    return (x[:1200], data.target[:1200]), (x[1200:], data.target[1200:])


@pytest.fixture(scope="session")
def digits_model(digit_split):
    """A small trained CNN on digits (the teacher in recovery tests)."""
    from keras import layers as L

    keras.utils.set_random_seed(21)
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = L.ReLU()(L.BatchNormalization(name="stem_bn")(x))
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="conv")(x)
    x = L.MaxPooling2D()(x)
    x = L.Dense(16, activation="relu", name="hidden")(L.Flatten()(x))
    model = keras.Model(inputs, L.Dense(10, activation="softmax", name="classifier")(x))
    model.compile("adam", "sparse_categorical_crossentropy")
    (x_train, y_train), _ = digit_split
    model.fit(x_train, y_train, epochs=8, batch_size=32, verbose=0)
    return model
