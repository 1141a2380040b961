"""Models for the harness tests: the tiny CNN converted once, and a model built to quantize badly.

``bad_model_path``: Flatten -> Dense "hidden" (32, relu) -> Dense "classifier"
(10, softmax), trained on digits, then one weight of ``hidden`` set to 2000
so unit 0 reaches ~2000 while the other 31 units stay below ~10; the
classifier ignores unit 0, so the float model is unchanged. Activations are
quantized per tensor: int8 gives ``hidden``'s output a scale of ~7.9, which
rounds the other units to 0 or 1 (top-1 collapses to ~14%); int16 activations
give a scale of ~0.06 and recover it.
"""

from __future__ import annotations

import numpy as np
import pytest

OUTLIER = 2000.0


@pytest.fixture(scope="session")
def int8_settings():
    from edgepipe.config.schema import IODtype, Scheme
    from edgepipe.keras_io.convert import ConvertSettings

    return ConvertSettings(Scheme.INT8, IODtype.INT8, IODtype.INT8, True, True)


@pytest.fixture(scope="session")
def tiny_tflite(keras_mod, tiny_model_path, digits, int8_settings) -> bytes:
    """The conftest tiny CNN (conv, pool, flatten, dense+softmax) as int8 bytes."""
    from edgepipe.keras_io.convert import convert

    return convert(keras_mod.models.load_model(tiny_model_path), digits[0][:100], int8_settings)


@pytest.fixture(scope="session")
def bad_model_path(tmp_path_factory, keras_mod, digits):
    keras = keras_mod
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Flatten(name="flat")(inp)
    h = keras.layers.Dense(32, activation="relu", name="hidden")(h)
    out = keras.layers.Dense(10, activation="softmax", name="classifier")(h)
    model = keras.Model(inp, out, name="bad")
    model.compile("adam", "sparse_categorical_crossentropy")
    x_tr, y_tr, _, _ = digits
    model.fit(x_tr, y_tr, epochs=20, batch_size=32, verbose=0)
    kernel, bias = model.get_layer("hidden").get_weights()
    kernel[36, 0] = OUTLIER  # a central pixel, bright in most digits
    model.get_layer("hidden").set_weights([kernel, bias])
    kc, bc = model.get_layer("classifier").get_weights()
    kc[0, :] = 0.0  # nothing reads unit 0: the float model is as trained
    model.get_layer("classifier").set_weights([kc, bc])
    path = tmp_path_factory.mktemp("bad") / "bad.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def bad_project(tmp_path_factory, bad_model_path, digits):
    from ep_helpers import write_project

    x_tr, _, x_ev, y_ev = digits
    folder = tmp_path_factory.mktemp("bad_project")
    np.savez(folder / "d.npz", x=x_tr[:100], x_eval=x_ev, y_eval=y_ev)
    return write_project(folder, bad_model_path, folder / "d.npz")


@pytest.fixture(scope="session")
def checks_of():
    """checks_of(build_result) -> {check name: Check}."""
    return lambda result: {c.name: c for c in result.report.checks}
