"""Loading real third-party models Keras 3 refuses: Keras 2 HDF5, multi-I/O and Keras 2 SavedModels, dynamic shapes.

Models are built in code with fixed seeds; ``tests/fixtures/legacy`` holds a
few tiny files written by Keras 2 itself (see its README), with Keras 2's
outputs on fixed inputs, because only Keras 2 writes exactly what Keras 2 wrote.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from edgepipe.errors import EXIT_USAGE, InputError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "legacy"


@pytest.fixture(scope="session")
def keras(keras_mod):
    return keras_mod


@pytest.fixture(scope="session")
def expected():
    return dict(np.load(FIXTURES / "expected.npz"))


def _load(path):
    from edgepipe.keras_io.load import load_keras_model

    return load_keras_model(path)


def _dynamic_range():
    """Converter settings with float I/O: enough to show a model converts, and fast."""
    from edgepipe.config.schema import IODtype, Scheme
    from edgepipe.keras_io.convert import ConvertSettings

    return ConvertSettings(Scheme.DYNAMIC, IODtype.FLOAT32, IODtype.FLOAT32, True, False)


def _one_line_input_error(excinfo) -> str:
    """The message of an InputError, checked to be what the CLI prints: one line, exit code 2."""
    assert excinfo.value.exit_code == EXIT_USAGE
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


# --- Keras 2 HDF5 -------------------------------------------------------------------------------


def _as_keras2(config: dict) -> dict:
    """A Keras 3 functional config rewritten with the keys Keras 2 wrote (MLPerf Tiny's VWW file has each)."""
    cfg = config["config"]
    for layer in cfg["layers"]:
        c = layer["config"]
        if isinstance(c.get("dtype"), dict):
            c["dtype"] = c["dtype"]["config"]["name"]
        if layer["class_name"] == "InputLayer":
            c["batch_input_shape"] = c.pop("batch_shape")
            c["ragged"] = False
            c.pop("optional", None)
        if layer["class_name"] == "DepthwiseConv2D":
            c["groups"] = 1
        layer["inbound_nodes"] = [[[arg["config"]["keras_history"][0], 0, 0, {}] for arg in node["args"]]
                                  for node in layer["inbound_nodes"]]
    cfg["input_layers"], cfg["output_layers"] = [cfg["input_layers"]], [cfg["output_layers"]]
    return {"class_name": "Functional", "config": cfg}


@pytest.fixture(scope="session")
def rewritten_h5(keras, tmp_path_factory):
    """(original Keras 3 model, .h5 whose model_config says Keras 2 wrote it)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inp, keras.layers.Dense(4, activation="softmax", name="head")(x), name="legacy")
    bn = model.get_layer("bn")
    rng = np.random.default_rng(0)
    bn.set_weights([rng.uniform(0.5, 1.5, 8), rng.normal(0, 0.1, 8), rng.normal(0, 0.1, 8), rng.uniform(0.5, 2, 8)])
    path = tmp_path_factory.mktemp("legacy") / "keras2.h5"
    model.save(path)
    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = json.dumps(_as_keras2(json.loads(f.attrs["model_config"])))
        f.attrs["keras_version"] = "2.4.0"
    return model, path


def test_keras3_refuses_a_keras2_h5_and_edgepipe_loads_it(keras, rewritten_h5):
    model, path = rewritten_h5
    with pytest.raises(Exception, match="groups"):
        keras.models.load_model(path, compile=False)
    loaded = _load(path)
    x = np.random.default_rng(1).random((5, 12, 12, 3), np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


def test_a_file_keras2_wrote_predicts_as_in_keras2(expected):
    """Conv/separable/transposed/depthwise, RNNs in wrappers, and a nested model called twice."""
    model = _load(FIXTURES / "keras2_zoo.h5")
    assert [t.name for t in model.inputs] == ["image", "frames"]
    cls, score = model.predict([expected["zoo_image"], expected["zoo_frames"]], verbose=0)
    np.testing.assert_allclose(cls, expected["zoo_cls"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(score, expected["zoo_score"], rtol=1e-5, atol=1e-6)


def test_a_keras2_mixed_precision_policy_is_kept(expected):
    model = _load(FIXTURES / "keras2_mixed_fp16.h5")
    assert model.layers[1].dtype_policy.name == "mixed_float16"
    y = model.predict(expected["keras2_mixed_fp16_x"], verbose=0)
    np.testing.assert_allclose(y, expected["keras2_mixed_fp16_y"], rtol=1e-3, atol=1e-3)


def test_old_sequential_batch_input_shape_keeps_the_input_rank(keras, tmp_path):
    """Keras <= 2.2 put batch_input_shape on the first layer (no InputLayer) and saved the layer list bare."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"), keras.layers.Dense(2, name="b")])
    path = tmp_path / "old.h5"
    model.save(path)
    with h5py.File(path, "r+") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
        layers = [ly for ly in layers if ly["class_name"] != "InputLayer"]
        layers[0]["config"]["batch_input_shape"] = [None, 4]
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": layers})
        f.attrs["keras_version"] = "2.2.4"
    loaded = _load(path)
    assert tuple(loaded.inputs[0].shape) == (None, 4)
    x = np.random.default_rng(0).random((3, 4), np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_tf_op_lambda_without_tf_keras_is_refused_naming_the_layer_and_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tf_keras", None)  # import tf_keras -> ImportError
    with pytest.raises(InputError) as exc:
        _load(FIXTURES / "keras2_tfoplambda.h5")
    msg = _one_line_input_error(exc)
    assert "tf.math.multiply" in msg and "TFOpLambda" in msg and "pip install 'edgepipe[legacy]'" in msg


def test_tf_op_lambda_runs_in_keras2_when_tf_keras_is_installed(expected):
    pytest.importorskip("tf_keras", reason="the optional extra edgepipe[legacy] is not installed")
    model = _load(FIXTURES / "keras2_tfoplambda.h5")
    out = model.predict(expected["keras2_tfoplambda_x"], verbose=0)
    assert list(out) == ["tf.math.multiply"] and model.count_params() == 6 * 3 + 3
    np.testing.assert_allclose(out["tf.math.multiply"], expected["keras2_tfoplambda_y"], rtol=1e-5, atol=1e-6)


def test_lambda_bytecode_is_never_run(rewritten_h5):
    """Even with tf_keras at hand: loading a Lambda layer runs the file author's Python code."""
    from edgepipe.keras_io.legacy import load_keras2_h5

    _, path = rewritten_h5
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
    config["config"]["layers"].append({"class_name": "Lambda", "name": "evil", "inbound_nodes": [[["head", 0, 0, {}]]],
                                       "config": {"name": "evil", "function": ["4wEAAAAAAAAA", None, None]}})
    with pytest.raises(InputError) as exc:
        load_keras2_h5(path, config)
    msg = _one_line_input_error(exc)
    assert "'evil'" in msg and "bytecode" in msg and "edgepipe[legacy]" not in msg


def test_every_translation_says_why():
    from edgepipe.keras_io.legacy import FIXES, STRUCTURE

    whys = [fix.why for fix in FIXES] + [why for _, why in STRUCTURE]
    assert all(len(why) > 30 for why in whys) and len(set(whys)) == len(whys)


def test_a_nested_model_call_keras2_could_not_have_written_is_refused():
    """Keras 2 numbered a nested model's calls from 1; a 0 would silently pick the wrong node once shifted."""
    from edgepipe.keras_io.legacy import Untranslatable, translate

    inner = {"class_name": "Functional", "name": "inner", "inbound_nodes": [[["x", 0, 0, {}]]],
             "config": {"name": "inner", "layers": [], "input_layers": [], "output_layers": []}}
    outer = {"class_name": "Functional", "config": {"name": "outer", "layers": [inner],
                                                    "input_layers": [["x", 0, 0]], "output_layers": [["inner", 0, 0]]}}
    with pytest.raises(Untranslatable, match="'inner'"):
        translate(outer)


# --- SavedModels --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def multi_io_saved_model(keras, tmp_path_factory):
    """(original model, exported folder): inputs 'features' and 'patch', outputs box/conf/logits."""
    keras.utils.set_random_seed(0)
    a, b = keras.Input((6,), name="features"), keras.Input((4, 4, 1), name="patch")
    h = keras.layers.Concatenate()([keras.layers.Dense(5, activation="relu")(a), keras.layers.Flatten()(b)])
    outs = {name: keras.layers.Dense(n, name=name)(h) for name, n in (("logits", 3), ("box", 4), ("conf", 1))}
    model = keras.Model({"features": a, "patch": b}, outs, name="multi")
    path = tmp_path_factory.mktemp("sm") / "multi"
    model.export(path, verbose=False)
    return model, path


def _multi_io_inputs():
    rng = np.random.default_rng(2)
    return {"features": rng.random((5, 6), np.float32), "patch": rng.random((5, 4, 4, 1), np.float32)}


def test_multi_input_output_saved_model_keeps_names(multi_io_saved_model):
    from edgepipe.keras_io.names import input_names, output_names

    original, path = multi_io_saved_model
    model = _load(path)
    assert input_names(model) == ["features", "patch"]
    assert output_names(model) == ["box", "conf", "logits"]
    x = _multi_io_inputs()
    want = original.predict(x, verbose=0)
    for got in (model.predict(x, verbose=0), model.predict([x["features"], x["patch"]], verbose=0)):
        assert sorted(got) == ["box", "conf", "logits"]
        for key in got:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)
    assert model.count_params() == original.count_params()


def test_a_wrapped_saved_model_converts(multi_io_saved_model):
    from ai_edge_litert.interpreter import Interpreter

    from edgepipe.keras_io.convert import convert

    model = _load(multi_io_saved_model[1])
    tflite = convert(model, None, _dynamic_range())
    runner = Interpreter(model_content=tflite).get_signature_runner()
    x = {k: v[:1] for k, v in _multi_io_inputs().items()}
    got, want = runner(**x), model.predict(x, verbose=0)
    assert sorted(got) == ["box", "conf", "logits"]
    for key in got:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-2, atol=1e-2)


def test_keras2_saved_model_with_optimizer_slots_loads(expected):
    """TF 2.21 alone fails on Keras 2's v1 optimizer slots (as on MLPerf Tiny's KWS); it loads with or without tf_keras."""
    model = _load(FIXTURES / "keras2_savedmodel")
    out = model.predict(expected["keras2_savedmodel_x"], verbose=0)
    np.testing.assert_allclose(next(iter(out.values())), expected["keras2_savedmodel_y"], rtol=1e-5, atol=1e-6)


def test_graph_only_loading_freezes_variables(monkeypatch, expected):
    """The loader used without tf_keras (and for TF1 exports): same outputs, parameters counted, convertible."""
    from edgepipe.keras_io import saved_model
    from edgepipe.keras_io.convert import convert

    monkeypatch.setattr(saved_model, "_LOADERS", saved_model._LOADERS[-1:])
    model = _load(FIXTURES / "keras2_savedmodel")
    out = model.predict(expected["keras2_savedmodel_x"], verbose=0)
    np.testing.assert_allclose(next(iter(out.values())), expected["keras2_savedmodel_y"], rtol=1e-5, atol=1e-6)
    assert model.count_params() == 6 * 4 + 4 + 4 * 2 + 2
    assert convert(model, None, _dynamic_range())


def test_tf1_saved_model_loads(keras, tmp_path):
    import tensorflow as tf

    v1 = tf.compat.v1
    weights = np.arange(15, dtype=np.float32).reshape(5, 3) / 10
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as sess:
        x = v1.placeholder(tf.float32, [None, 5], name="x")
        w = v1.get_variable("w", initializer=weights, use_resource=False)
        y = tf.nn.relu(tf.matmul(x, w), name="y")
        sess.run(v1.global_variables_initializer())
        v1.saved_model.simple_save(sess, str(tmp_path / "tf1"), {"features": x}, {"scores": y})
    model = _load(tmp_path / "tf1")
    x = np.random.default_rng(0).random((3, 5), np.float32)
    assert [t.name for t in model.inputs] == ["features"] and model.count_params() == 15
    np.testing.assert_allclose(model.predict(x, verbose=0)["scores"], np.maximum(x @ weights, 0), rtol=1e-5)


def test_failed_saved_model_says_what_was_tried_and_names_the_extra(monkeypatch, tmp_path):
    from edgepipe.keras_io import saved_model

    def keras2_failure(path, tf):
        raise AttributeError("'_UserObject' object has no attribute 'add_slot'")

    def graph_failure(path, tf):
        raise ValueError("no graph")

    monkeypatch.setitem(sys.modules, "tf_keras", None)  # import tf_keras -> ImportError
    monkeypatch.setattr(saved_model, "_LOADERS", (("tf.saved_model.load", keras2_failure),
                                                  ("with tf_keras", saved_model._load_with_tf_keras),
                                                  ("graph only", graph_failure)))
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(InputError) as exc:
        _load(tmp_path / "sm")
    msg = _one_line_input_error(exc)
    assert "add_slot" in msg and "tf_keras is not installed" in msg and "no graph" in msg
    assert "pip install 'edgepipe[legacy]'" in msg and "serving_default" not in msg


# --- fixed shapes -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fully_conv(keras):
    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)
    return keras.Model(inp, keras.layers.Conv2D(2, 1)(x), name="fcn")


def test_with_fixed_inputs_fixes_the_shape_and_keeps_the_outputs(fully_conv):
    from edgepipe.keras_io.shapes import dynamic_inputs, with_fixed_inputs

    assert dynamic_inputs(fully_conv) == {"image": (None, None, 3)}
    fixed = with_fixed_inputs(fully_conv, {"image": (16, 12, 3)})
    assert tuple(fixed.inputs[0].shape) == (None, 16, 12, 3) and dynamic_inputs(fixed) == {}
    assert tuple(fixed.outputs[0].shape) == (None, 8, 6, 2)
    x = np.random.default_rng(0).random((2, 16, 12, 3), np.float32)
    np.testing.assert_allclose(fixed.predict(x, verbose=0), fully_conv.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_with_fixed_inputs_on_a_saved_model_with_two_inputs(keras, tmp_path):
    from edgepipe.keras_io.shapes import dynamic_inputs, with_fixed_inputs

    keras.utils.set_random_seed(0)
    audio, gain = keras.Input((None, 8), name="audio"), keras.Input((1,), name="gain")
    x = keras.layers.Conv1D(4, 3, padding="same")(audio)
    y = keras.layers.GlobalAveragePooling1D()(x) * gain
    keras.Model([audio, gain], keras.layers.Dense(2, name="out")(y)).export(tmp_path / "kws", verbose=False)
    model = _load(tmp_path / "kws")
    assert dynamic_inputs(model) == {"audio": (None, 8)}
    fixed = with_fixed_inputs(model, {"audio": (20, 8)})
    assert [tuple(t.shape) for t in fixed.inputs] == [(None, 20, 8), (None, 1)]
    rng = np.random.default_rng(0)
    x = {"audio": rng.random((3, 20, 8), np.float32), "gain": rng.random((3, 1), np.float32)}
    np.testing.assert_allclose(fixed.predict(x, verbose=0)["output_0"], model.predict(x, verbose=0)["output_0"],
                               rtol=1e-6)


@pytest.mark.parametrize("shapes, words", [
    ({"image": (16, 12)}, ["'image'", "3 positive sizes", "(16, 12)"]),
    ({"image": (16, 12, 4)}, ["'image'", "(None, None, 3)", "axis 3"]),
    ({"image": (16, 0, 3)}, ["'image'", "positive"]),
    ({"imag": (16, 12, 3)}, ["'imag'", "['image']"]),
])
def test_with_fixed_inputs_refuses_bad_shapes(fully_conv, shapes, words):
    from edgepipe.keras_io.shapes import with_fixed_inputs

    with pytest.raises(InputError) as exc:
        with_fixed_inputs(fully_conv, shapes)
    msg = _one_line_input_error(exc)
    assert all(w in msg for w in words), msg


def test_with_fixed_inputs_says_which_layer_refuses_the_shape(keras):
    from edgepipe.keras_io.shapes import with_fixed_inputs

    a, b = keras.Input((None,), name="a"), keras.Input((3,), name="b")
    model = keras.Model([a, b], keras.layers.Add(name="sum")([a, b]), name="adder")
    assert [tuple(t.shape) for t in with_fixed_inputs(model, {"a": (3,)}).inputs] == [(None, 3), (None, 3)]
    with pytest.raises(InputError) as exc:
        with_fixed_inputs(model, {"a": (4,)})
    msg = _one_line_input_error(exc)
    assert "'adder'" in msg and "a: (4,)" in msg and "Add.call()" in msg and "\x1b" not in msg


# --- not a model at all -------------------------------------------------------------------------


def test_random_bytes_h5_is_an_input_error(tmp_path):
    path = tmp_path / "noise.h5"
    path.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(InputError) as exc:
        _load(path)
    assert str(path) in _one_line_input_error(exc)


def test_folder_without_saved_model_pb_is_an_input_error(tmp_path):
    with pytest.raises(InputError) as exc:
        _load(tmp_path)
    assert "without saved_model.pb" in _one_line_input_error(exc)


def test_damaged_saved_model_says_what_was_tried(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"not a protobuf at all")
    with pytest.raises(InputError) as exc:
        _load(tmp_path)
    msg = _one_line_input_error(exc)
    assert "tf.saved_model.load" in msg and "graph only" in msg
