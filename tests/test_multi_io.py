"""Models with several inputs and outputs, and builds without labels (issue: any real model in).

One model built here has two inputs (an 8x8 digit image and four numbers) and
three outputs of different kinds: class scores, a regression head and a raw
feature map, like the detector heads users bring. It goes through build (on
LiteRT and on TFLite Micro), verify and inspect; inputs and outputs are
matched by name, since the converter reorders them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import edgepipe
from edgepipe.cli import cli


def _quadrants(x: np.ndarray) -> np.ndarray:
    """Mean intensity of each image quadrant: the regression head's target."""
    return np.stack([x[:, r:r + 4, c:c + 4, 0].mean(axis=(1, 2)) for r in (0, 4) for c in (0, 4)], axis=1)


@pytest.fixture(scope="session")
def two_in_three_out(tmp_path_factory, digits):
    """(folder, model path): a trained 2-input, 3-output model and its data files."""
    from edgepipe.keras_io import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 1), name="image")
    meta = keras.Input((4,), name="meta")
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(image)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="hidden")(h)
    feat = keras.layers.Conv2D(2, 1, name="seg")(h)
    pooled = keras.layers.Flatten(name="flat")(keras.layers.MaxPooling2D(name="pool")(h))
    joined = keras.layers.Concatenate(name="join")([pooled, meta])
    cls = keras.layers.Dense(10, activation="softmax", name="cls")(joined)
    box = keras.layers.Dense(4, name="box")(joined)
    model = keras.Model([image, meta], [cls, box, feat], name="heads")
    model.compile("adam", ["sparse_categorical_crossentropy", "mse", None])
    x_tr, y_tr, x_ev, y_ev = digits
    rng = np.random.default_rng(0)
    meta_tr, meta_ev = rng.random((len(x_tr), 4), np.float32), rng.random((len(x_ev), 4), np.float32)
    model.fit([x_tr, meta_tr], [y_tr, _quadrants(x_tr)], epochs=15, batch_size=32, verbose=0)
    folder = tmp_path_factory.mktemp("heads")
    model.save(folder / "heads.keras")
    # arrays in an order unlike the model's, and the image under another name: matched by name
    np.savez(folder / "rep.npz", meta=meta_tr[:300], img=x_tr[:300])
    np.savez(folder / "eval.npz", img=x_ev, meta=meta_ev, y_cls=y_ev, y_box=_quadrants(x_ev))
    return folder, folder / "heads.keras"


def _project(folder: Path, model: Path, eval_data: bool = True, **extra) -> Path:
    cfg = {"model": str(model),
           "data": {"representative": str(folder / "rep.npz"), **({"eval": str(folder / "eval.npz")} if eval_data
                                                                 else {})},
           "inputs": {"image": {"array": "img"}},
           "outputs": {"cls": {"task": "classification", "labels": "y_cls"},
                       "box": {"task": "regression", "labels": "y_box"},
                       "seg": {"task": "raw"}},
           "quantization": {"calibration_samples": 100}}
    cfg.update(extra)
    path = folder / f"edgepipe-{len(list(folder.glob('edgepipe-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="session")
def heads_build(two_in_three_out, tmp_path_factory):
    folder, model = two_in_three_out
    out = tmp_path_factory.mktemp("heads-out")
    profile = out / "rpi4-3pt.yaml"  # the box head's RMSE rises ~2% in int8: allow 3
    profile.write_text(yaml.safe_dump({"name": "rpi4-3pt", "extends": "rpi4", "accuracy": {"max_drop": 3}}))
    return edgepipe.build(str(profile), _project(folder, model), out=out / "rpi4")


def _by_name(acc: dict) -> dict:
    return {o["name"]: o for o in acc["outputs"]}


def test_build_judges_each_output_by_its_own_task(heads_build):
    doc = heads_build.report.to_dict()
    outs = _by_name(doc["accuracy"])
    assert set(outs) == {"cls", "box", "seg"}
    assert outs["cls"]["task"] == "classification" and outs["cls"]["labelled"]
    assert outs["cls"]["quantized"]["top1"] > 80.0, "the class head still classifies digits"
    assert outs["box"]["task"] == "regression"
    assert outs["box"]["quantized"]["rmse"] < 1.1 * outs["box"]["float"]["rmse"] + 0.01
    assert outs["seg"]["task"] == "raw" and not outs["seg"]["labelled"]
    assert outs["seg"]["quantized_vs_float"]["sqnr_db"] > 20.0
    acc = next(c for c in heads_build.report.checks if c.name == "accuracy")
    assert acc.status == "pass", acc.detail
    assert all(f"output {n!r}" in acc.detail for n in ("cls", "box", "seg"))
    assert doc["status"] == "passed" and heads_build.exit_code == 0


def test_inputs_and_outputs_are_matched_by_name_not_position(heads_build):
    from edgepipe.tflite.model import read_tflite

    tfl = read_tflite(heads_build.artifacts["model.tflite"])
    assert sorted(tfl.input_names) == ["image", "meta"]
    assert sorted(tfl.output_names) == ["box", "cls", "seg"]
    shapes = {n: t.shape for n, t in zip(tfl.output_names, tfl.output_tensors)}
    assert shapes == {"cls": (1, 10), "box": (1, 4), "seg": (1, 8, 8, 2)}
    io = heads_build.report.to_dict()["inputs"]["io"]
    assert [i["array"] for i in io["inputs"]] == ["img", "meta"]


def test_tflm_runs_a_two_input_model_on_its_own_kernels(two_in_three_out, tmp_path):
    folder, model = two_in_three_out
    result = edgepipe.build("stm32h7", _project(folder, model), out=tmp_path / "mcu")
    acc = result.report.to_dict()["accuracy"]
    assert acc["runtime"]["name"] == "tflm"
    assert _by_name(acc)["cls"]["quantized"]["top1"] > 80.0
    lsb = next(c for c in result.report.checks if c.name == "runtime_lsb_diff")
    assert lsb.status != "skip", lsb.detail


def test_verify_measures_each_output_of_a_tflite_against_its_labels(heads_build, two_in_three_out):
    folder, model = two_in_three_out
    cfg = _project(folder, model)
    res = CliRunner().invoke(cli, ["verify", str(heads_build.artifacts["model.tflite"]), "-t", "rpi4", "--config",
                                   str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    outs = _by_name(doc["accuracy"])
    assert outs["cls"]["quantized"]["top1"] > 80.0 and "float" not in outs["cls"]
    assert doc["status"] == "unverified", "no float model to hold the labelled figures to: not PASSED"


def test_verify_refuses_a_single_output_gate_on_several_outputs(heads_build, two_in_three_out):
    folder, model = two_in_three_out
    res = CliRunner().invoke(cli, ["verify", str(heads_build.artifacts["model.tflite"]), "-t", "rpi4", "--config",
                                   str(_project(folder, model)), "--min-accuracy", "80"])
    assert res.exit_code == 2, res.output
    assert "one-output model" in res.output


def test_inspect_names_the_inputs_and_outputs(heads_build):
    res = CliRunner().invoke(cli, ["inspect", str(heads_build.artifacts["model.tflite"])])
    assert res.exit_code == 0, res.output
    for name in ("image", "meta", "cls", "box", "seg"):
        assert name in res.output


def test_a_missing_input_array_names_what_exists(two_in_three_out, tmp_path):
    folder, model = two_in_three_out
    cfg = _project(folder, model, inputs={})  # 'image' is stored as 'img'
    res = CliRunner().invoke(cli, ["build", "-t", "rpi4", "--config", str(cfg), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert "image" in res.output and "img" in res.output and "inputs.<name>.array" in res.output


def test_an_output_the_model_lacks_is_refused_with_the_names_it_has(two_in_three_out, tmp_path):
    folder, model = two_in_three_out
    cfg = _project(folder, model, outputs={"boxes": {"task": "raw"}})
    res = CliRunner().invoke(cli, ["build", "-t", "rpi4", "--config", str(cfg), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert "'boxes'" in res.output and "cls" in res.output


def test_pruning_keeps_every_head(two_in_three_out, tmp_path):
    folder, model = two_in_three_out
    cfg = _project(folder, model, prune={"method": "channel", "ratio": 0.0, "per_layer": {"hidden": 0.5}})
    profile = tmp_path / "narrow.yaml"
    profile.write_text(yaml.safe_dump({"name": "narrow", "extends": "rpi4", "accelerator": {"channel_multiple": 1}}))
    result = edgepipe.build(str(profile), cfg, out=tmp_path / "pruned")
    doc = result.report.to_dict()
    hidden = next(g for g in doc["prune"]["groups"] if g["members"][0]["layer"] == "hidden")
    assert hidden["kept"] == 8 and {m["layer"] for m in hidden["members"]} >= {"hidden", "seg"}
    assert sorted(_by_name(doc["accuracy"])) == ["box", "cls", "seg"]
    assert {c.name for c in result.report.checks} >= {"accuracy", "accuracy_vs_original"}


def test_without_labels_held_out_samples_gate_on_agreement_and_sqnr(two_in_three_out, tmp_path):
    """No eval data: the representative samples calibration does not use are compared with the float model."""
    folder, model = two_in_three_out
    cfg = _project(folder, model, eval_data=False)
    result = edgepipe.build("rpi4", cfg, out=tmp_path / "nolabels")
    doc = result.report.to_dict()
    acc = doc["accuracy"]
    assert acc["samples"] == 200 and not acc["labelled"], "300 representative samples, 100 used to calibrate"
    outs = _by_name(acc)
    assert outs["cls"]["agreement"] > 90.0
    assert outs["box"]["quantized_vs_float"]["sqnr_db"] > 15.0
    check = next(c for c in result.report.checks if c.name == "accuracy")
    assert check.status == "pass" and "agrees with the float model" in check.detail
    assert "held out from calibration" in doc["inputs"]["eval"]["source"]
    assert {c.name: c.status for c in result.report.checks}["runtime_agreement"] == "pass"


def test_a_label_free_gate_fails_when_the_quantized_model_falls_short(two_in_three_out, tmp_path):
    folder, model = two_in_three_out
    profile = tmp_path / "strict.yaml"
    profile.write_text(yaml.safe_dump({"name": "strict", "extends": "rpi4", "accuracy": {"min_sqnr_db": 80}}))
    result = edgepipe.build(str(profile), _project(folder, model, eval_data=False), out=tmp_path / "strict")
    check = next(c for c in result.report.checks if c.name == "accuracy")
    assert check.status == "fail" and "min 80 dB" in check.detail
    assert result.exit_code == 1


def test_nothing_to_measure_is_unverified_not_passed(tiny_model_path, tmp_path):
    """A dynamic-range build with no data at all: every check that ran passed, but accuracy was not measured."""
    cfg = tmp_path / "edgepipe.yaml"
    cfg.write_text(yaml.safe_dump({"model": str(tiny_model_path), "quantization": {"scheme": "dynamic"}}))
    profile = tmp_path / "host.yaml"
    profile.write_text(yaml.safe_dump({"name": "host", "extends": "rpi4", "quantization": {
        "scheme": "dynamic", "input_dtype": "float32", "output_dtype": "float32"}}))
    res = CliRunner().invoke(cli, ["build", "-t", str(profile), "--config", str(cfg), "-o", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "UNVERIFIED" in res.output and "PASSED" not in res.output
    doc = json.loads((tmp_path / "o" / "report.json").read_text())
    assert doc["status"] == "unverified"


def test_a_profile_can_require_a_measurement(tiny_model_path, tiny_build, tmp_path):
    """accuracy.require_measured: an unmeasured model is FAILED (exit 1), in build and in verify."""
    cfg = tmp_path / "edgepipe.yaml"
    cfg.write_text(yaml.safe_dump({"model": str(tiny_model_path), "quantization": {"scheme": "dynamic"}}))
    profile = tmp_path / "strict.yaml"
    profile.write_text(yaml.safe_dump({"name": "strict", "extends": "rpi4", "accuracy": {"require_measured": True},
                                       "quantization": {"scheme": "dynamic", "input_dtype": "float32",
                                                        "output_dtype": "float32"}}))
    res = CliRunner().invoke(cli, ["build", "-t", str(profile), "--config", str(cfg), "-o", str(tmp_path / "o")])
    assert res.exit_code == 1, res.output
    assert "require_measured" in res.output and "UNVERIFIED" not in res.output
    assert json.loads((tmp_path / "o" / "report.json").read_text())["status"] == "failed"
    strict_int8 = tmp_path / "strict8.yaml"
    strict_int8.write_text(yaml.safe_dump({"name": "strict8", "extends": "rpi4",
                                           "accuracy": {"require_measured": True}}))
    res = CliRunner().invoke(cli, ["verify", str(tiny_build.artifacts["model.tflite"]), "-t", str(strict_int8)])
    assert res.exit_code == 1 and "require_measured" in res.output, res.output


def _two_conv_classifier(path: Path) -> None:
    """An untrained one-input, one-output model: two convolutions and a softmax head, saved to ``path``."""
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="first")(inp)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="hidden")(h)
    out = keras.layers.Dense(10, activation="softmax", name="classifier")(keras.layers.Flatten()(h))
    keras.Model(inp, out).save(path)


def test_a_pruned_model_is_held_to_the_original_without_labels(data_npz, tmp_path):
    """Pruning a hidden conv down to one channel with no recovery: the int8 model no longer agrees with the original."""
    _two_conv_classifier(tmp_path / "m.keras")
    cfg = tmp_path / "edgepipe.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": str(tmp_path / "m.keras"), "data": {"representative": {"path": str(data_npz), "x": "x_train"}},
        "quantization": {"calibration_samples": 100},
        "prune": {"method": "channel", "ratio": 0.0, "per_layer": {"hidden": 0.9375}}}))
    profile = tmp_path / "narrow.yaml"
    profile.write_text(yaml.safe_dump({"name": "narrow", "extends": "rpi4", "accelerator": {"channel_multiple": 1}}))
    result = edgepipe.build(str(profile), cfg, out=tmp_path / "pruned")
    doc = result.report.to_dict()
    assert doc["prune"]["totals"]["params"]["after"] < doc["prune"]["totals"]["params"]["before"]
    against = {c.name: c for c in result.report.checks}["accuracy_vs_original"]
    assert "against the unpruned float model" in against.detail
    agreement = doc["accuracy"]["outputs"][0]["quantized_vs_original"]["agreement"]
    assert agreement < 90.0, "15 of 16 channels gone, no recovery: predictions change"
    assert against.status == "fail" and against.unit == "% changed class"
    assert result.exit_code == 1


@pytest.fixture(scope="session")
def fully_convolutional(tmp_path_factory, digits):
    """A detector-like model with a None x None input, and 8x8 data for it."""
    import keras

    keras.utils.set_random_seed(1)
    inp = keras.Input((None, None, 1), name="frame")
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inp)
    heat = keras.layers.Conv2D(2, 1, name="heatmap")(h)
    folder = tmp_path_factory.mktemp("fcn")
    keras.Model(inp, heat, name="fcn").save(folder / "fcn.keras")
    np.savez(folder / "rep.npz", x=digits[0][:150])
    return folder


def test_a_dynamic_input_is_refused_until_the_config_fixes_its_shape(fully_convolutional, tmp_path):
    folder = fully_convolutional
    base = {"model": str(folder / "fcn.keras"), "data": {"representative": str(folder / "rep.npz")},
            "task": "raw", "quantization": {"calibration_samples": 100}}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(base))
    res = CliRunner().invoke(cli, ["build", "-t", "rpi4", "--config", str(tmp_path / "a.yaml"), "-o", str(tmp_path / "a")])
    assert res.exit_code == 2, res.output
    assert "'frame'" in res.output and "inputs.frame.shape" in res.output

    (tmp_path / "b.yaml").write_text(yaml.safe_dump({**base, "inputs": {"frame": {"shape": [8, 8, 1]}}}))
    result = edgepipe.build("rpi4", tmp_path / "b.yaml", out=tmp_path / "b")
    doc = result.report.to_dict()
    assert doc["inputs"]["io"]["inputs"] == [{"name": "frame", "shape": [1, 8, 8, 1], "array": "x",
                                             "shape_from_config": True}]
    assert doc["model"]["inputs"][0]["shape"] == [1, 8, 8, 1]
    out = doc["accuracy"]["outputs"][0]
    assert out["task"] == "raw" and out["quantized_vs_float"]["sqnr_db"] > 15.0
    assert result.exit_code == 0, [c.detail for c in result.report.failed_checks]


def test_each_input_has_its_own_preprocessing_and_array(tmp_path):
    from edgepipe.config.project import load_project
    from edgepipe.data.samples import Samples
    from edgepipe.pipeline.inputs import load_split
    from edgepipe.pipeline.io_spec import resolve

    rng = np.random.default_rng(0)
    img, meta = rng.random((5, 4, 4, 3), np.float32), rng.random((5, 2), np.float32)
    np.savez(tmp_path / "d.npz", pixels=img * 255, meta=meta)
    (tmp_path / "edgepipe.yaml").write_text(yaml.safe_dump({
        "data": {"eval": "d.npz"}, "preprocess": {"scale": 2.0},
        "inputs": {"image": {"array": "pixels", "preprocess": {"scale": 1 / 255, "mean": 0.5, "std": 0.5}}}}))
    project = load_project(tmp_path / "edgepipe.yaml")
    io = resolve(project, {"inputs": [["meta", [None, 2]], ["image", [None, 4, 4, 3]]],
                           "outputs": [["scores", [None, 3]], ["features", [None, 8]]]}, "model")
    split = load_split(project, "eval", io, labelled=True)
    assert isinstance(split.x, Samples) and split.x.names == ("meta", "image")
    got = dict(split.x.named())
    np.testing.assert_allclose(got["image"], (img - 0.5) / 0.5, atol=1e-5)
    np.testing.assert_allclose(got["meta"], meta * 2.0, atol=1e-6)  # the top-level preprocess
    assert [o.task for o in io.outputs] == ["raw", "raw"], "several outputs, no task given: compared as raw"
    assert split.labels == {}


def test_one_input_two_outputs_read_the_sources_own_x_key(data_npz, tmp_path):
    """A detector-like model (one input, a class and a box head): ``{path, x: x_train}`` names its input's
    array, as for a one-output model (it was refused as 'expected arrays named [x]')."""
    import keras

    keras.utils.set_random_seed(4)
    inp = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp))
    cls = keras.layers.Dense(10, activation="softmax", name="cls")(h)
    box = keras.layers.Dense(4, name="box")(h)
    keras.Model(inp, {"cls": cls, "box": box}).save(tmp_path / "m.keras")
    cfg = tmp_path / "edgepipe.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": str(tmp_path / "m.keras"), "data": {"representative": {"path": str(data_npz), "x": "x_train"}},
        "outputs": {"cls": {"task": "classification"}, "box": {"task": "raw"}}}))
    result = edgepipe.build("rpi4", cfg, out=tmp_path / "out")
    doc = result.report.to_dict()
    assert doc["inputs"]["representative"]["samples"] == 200  # from x_train (1400); the file's x has only 100
    assert {o["name"] for o in doc["accuracy"]["outputs"]} == {"cls", "box"}


def test_unlabelled_training_data_fine_tunes_by_distillation_alone(two_in_three_out, tmp_path):
    """data.train without labels is what label-free recovery trains on (it was refused as 'no labels')."""
    folder, model = two_in_three_out
    cfg = _project(folder, model, prune={"method": "channel", "ratio": 0.0, "per_layer": {"hidden": 0.5},
                                         "finetune": {"epochs": 1}})
    doc = yaml.safe_load(cfg.read_text())
    doc["data"]["train"] = str(folder / "rep.npz")  # the images and meta, no label arrays
    cfg.write_text(yaml.safe_dump(doc))
    result = edgepipe.build("rpi4", cfg, out=tmp_path / "distilled")
    recovery = result.report.to_dict()["prune"]["recovery"]
    assert recovery["done"] and "rep.npz" in str(recovery["data"]["train"])


def test_unlabelled_training_data_of_a_one_output_model_is_distilled_on(data_npz, tmp_path):
    """A data.train with only an x array (no y) trains the pruned model on the unpruned one's outputs."""
    _two_conv_classifier(tmp_path / "m.keras")
    cfg = tmp_path / "edgepipe.yaml"
    source = {"path": str(data_npz), "x": "x_train"}
    cfg.write_text(yaml.safe_dump({
        "model": str(tmp_path / "m.keras"), "data": {"representative": source, "train": source},
        "quantization": {"calibration_samples": 100},
        "prune": {"method": "channel", "ratio": 0.0, "per_layer": {"hidden": 0.5}, "finetune": {"epochs": 1}}}))
    result = edgepipe.build("rpi4", cfg, out=tmp_path / "distilled")
    recovery = result.report.to_dict()["prune"]["recovery"]
    assert recovery["done"] and "x_train" in str(recovery["data"]["train"])
