"""Shared fixtures: tiny real models and real data, built once per session.

Models are trained for a few seconds on scikit-learn's bundled digits with
fixed seeds, so accuracy figures are real but the suite stays fast.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from ep_helpers import write_project

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Builds cache stage results; tests keep theirs out of the user's ~/.cache.
os.environ.setdefault("EDGEPIPE_CACHE_DIR", tempfile.mkdtemp(prefix="edgepipe-test-cache-"))

REPO = Path(__file__).resolve().parent.parent


def digits_arrays():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    return x, d.target.astype(np.int64)


@pytest.fixture(scope="session")
def keras_mod():
    """Keras, imported once TensorFlow is (quietly) imported."""
    from edgepipe.keras_io import import_tensorflow

    import_tensorflow()
    import keras

    return keras


@pytest.fixture(scope="session")
def digits():
    """(x_train, y_train, x_eval, y_eval) in [0, 1], shape (N, 8, 8, 1)."""
    x, y = digits_arrays()
    return x[:1400], y[:1400], x[1400:], y[1400:]


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, digits):
    """A tiny trained CNN saved as .keras (about 95% top-1 on digits)."""
    from edgepipe.keras_io import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inp)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Flatten(name="flat")(x)
    out = keras.layers.Dense(10, activation="softmax", name="classifier")(x)
    model = keras.Model(inp, out, name="tiny")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x_tr, y_tr, _, _ = digits
    model.fit(x_tr, y_tr, epochs=30, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def data_npz(tmp_path_factory, digits):
    x_tr, y_tr, x_ev, y_ev = digits
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=x_tr[:100], x_eval=x_ev, y_eval=y_ev, x_train=x_tr, y_train=y_tr)
    return path


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory, tiny_model_path, data_npz):
    """One real build of the tiny model for rpi4, shared by report tests."""
    import edgepipe

    folder = tmp_path_factory.mktemp("project")
    cfg = write_project(folder, tiny_model_path, data_npz)
    return edgepipe.build("rpi4", cfg, out=folder / "out")
