"""ONNX files and PyTorch modules through ``edgepipe build`` and ``edgepipe verify`` (issue 17).

The models are defined in ``foreign_nets.py`` and exported/converted by the
real tools (torch.onnx.export, onnx2tf, ONNX Runtime, LiteRT, TFLite Micro).
Data is channels-first, as the source models take it.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from foreign_helpers import NETS, write_config
from edgepipe.cli import cli


def _build(args):
    return CliRunner().invoke(cli, ["build", *map(str, args), "--no-cache", "--json"])


def _report(res) -> dict:
    return json.loads(res.stdout)


@pytest.fixture(scope="session")
def torch_rpi4(heads_folder, tmp_path_factory):
    """``Heads`` from its factory, built for the Raspberry Pi 4 (LiteRT, XNNPACK)."""
    cfg = write_config(heads_folder, f"{NETS}:heads", "torch.yaml")
    out = tmp_path_factory.mktemp("torch-rpi4")
    return _build(["-t", "rpi4", "-c", cfg, "-o", out]), out


def test_a_pytorch_factory_builds_for_rpi4_and_its_float_model_matches_pytorch(torch_rpi4):
    res, out = torch_rpi4
    assert res.exit_code == 0, res.output
    doc = _report(res)
    source = doc["inputs"]["model"]["source"]
    assert source["format"] == "torch" and source["reference"].startswith("PyTorch 2.13")
    cmp = source["comparison"]
    assert cmp["passed"] and cmp["samples"] == 64 and set(cmp["outputs"]) == {"scores", "mask"}
    for name, o in cmp["outputs"].items():
        assert o["max_abs_error"] < 1e-5, (name, o)
    assert cmp["outputs"]["mask"]["layout"]["perm"] == [0, 2, 3, 1], "NCHW output compared channels-last"
    assert source["inputs"]["input"] == {"source_name": "input", "source": "NCHW", "model": "NHWC",
                                         "perm": [0, 2, 3, 1], "transposed": True}
    acc = {o["name"]: o for o in doc["accuracy"]["outputs"]}
    assert acc["scores"]["quantized_vs_float"]["sqnr_db"] > 25 and acc["mask"]["quantized_vs_float"]["sqnr_db"] > 25
    assert doc["accuracy"]["runtime"]["name"].startswith("litert")


def test_the_tflite_of_a_pytorch_model_is_channels_last_and_int8(torch_rpi4):
    from edgepipe.tflite.model import read_tflite

    res, out = torch_rpi4
    tfl = read_tflite(out / "model.tflite")
    assert tfl.input_names == ["input"] and sorted(tfl.output_names) == ["mask", "scores"]
    assert tuple(tfl.input_tensors[0].shape) == (1, 16, 16, 3)
    shapes = {n: tuple(t.shape) for n, t in zip(tfl.output_names, tfl.output_tensors)}
    assert shapes == {"scores": (1, 5), "mask": (1, 16, 16, 2)}
    assert {str(t.dtype) for t in [*tfl.input_tensors, *tfl.output_tensors]} == {"int8"}


def test_an_onnx_file_builds_for_an_mcu_on_tflite_micro(heads_onnx, heads_folder, tmp_path):
    cfg = write_config(heads_folder, heads_onnx.name, "onnx.yaml")
    res = _build(["-t", "nucleo-l4r5zi", "-c", cfg, "-o", tmp_path / "mcu"])
    assert res.exit_code == 0, res.output
    doc = _report(res)
    source = doc["inputs"]["model"]["source"]
    assert source["format"] == "onnx" and source["reference"].startswith("ONNX Runtime")
    # names TensorFlow refuses are made safe; the source names are kept beside them
    assert source["inputs"]["input_1"]["source_name"] == "input.1"
    assert source["outputs"]["mask_out"] == {"source_name": "mask/out"}
    assert all(o["max_abs_error"] < 1e-5 for o in source["comparison"]["outputs"].values())
    assert doc["accuracy"]["runtime"]["name"] == "tflm"
    acc = {o["name"]: o for o in doc["accuracy"]["outputs"]}
    assert acc["scores"]["quantized_vs_float"]["sqnr_db"] > 25 and acc["mask_out"]["quantized_vs_float"]["sqnr_db"] > 25
    resolver = (tmp_path / "mcu" / "model_op_resolver.h").read_text()
    assert "AddDepthwiseConv2D" in resolver and (tmp_path / "mcu" / "model_data.cc").exists()


def test_a_pytorch_kws_model_builds_for_esp32_and_verify_reads_channels_last_data(kws_folder, tmp_path):
    cfg = write_config(kws_folder, f"{NETS}:tiny_kws", task="classification",
                       data={"representative": "rep.npz", "eval": "eval.npz"})
    res = _build(["-t", "esp32-s3", "-c", cfg, "-o", tmp_path / "esp"])
    assert res.exit_code == 0, res.output
    doc = _report(res)
    out = doc["accuracy"]["outputs"][0]
    assert doc["accuracy"]["runtime"]["name"] == "tflm"
    assert out["float"]["top1"] == 100.0, "eval labels are the PyTorch module's own predictions"
    assert out["quantized"]["top1"] >= 90.0
    tflite = tmp_path / "esp" / "model.tflite"
    ok = CliRunner().invoke(cli, ["verify", str(tflite), "-t", "esp32-s3", "--data",
                                  str(kws_folder / "eval_nhwc.npz"), "--min-accuracy", "90", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["accuracy"]["outputs"][0]["quantized"]["top1"] >= 90.0
    nchw = CliRunner().invoke(cli, ["verify", str(tflite), "-t", "esp32-s3", "--data", str(kws_folder / "eval.npz")])
    assert nchw.exit_code == 2
    assert "(10, 8, 1)" in nchw.stderr and "(1, 10, 8)" in nchw.stderr


def test_the_converters_leave_nothing_in_the_working_folder_and_export_the_same_bytes(heads_onnx, tmp_path,
                                                                                      monkeypatch):
    from edgepipe.foreign.load import load_foreign
    from edgepipe.foreign.spec import parse_model_spec

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    load_foreign(parse_model_spec(str(heads_onnx)))
    assert "TF_USE_LEGACY_KERAS" not in os.environ, "onnx2tf's switch to Keras 2 is undone"
    first = load_foreign(parse_model_spec(f"{NETS}:heads"))
    assert list(tmp_path.iterdir()) == []
    again = load_foreign(parse_model_spec(f"{NETS}:heads"))
    assert first.sha256 == again.sha256, "the export is byte-identical: the build cache's key for the model"


def test_an_onnx_file_with_dynamic_height_and_width_takes_its_shape_from_the_config(heads_folder, torch_mod, tmp_path):
    """``inputs.<name>.shape`` is in the source's layout (C, H, W); without it, the message says so."""
    import foreign_nets

    module, example = foreign_nets.heads()
    onnx_path = tmp_path / "fcn.onnx"
    torch_mod.onnx.export(module, (example,), str(onnx_path), input_names=["image"], output_names=["scores", "mask"],
                          dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}}, opset_version=17, dynamo=False)
    np.savez(tmp_path / "rep.npz", x=np.load(heads_folder / "rep.npz")["x"])
    unset = CliRunner().invoke(cli, ["build", "-t", "rpi4", "-c", str(write_config(tmp_path, "fcn.onnx", "a.yaml")),
                                     "-o", str(tmp_path / "a"), "--no-cache"])
    assert unset.exit_code == 2, unset.output
    assert "inputs.image.shape" in unset.stderr and "(3, None, None) (NCHW)" in unset.stderr
    cfg = write_config(tmp_path, "fcn.onnx", "b.yaml", inputs={"image": {"shape": [3, 16, 16]}})
    res = _build(["-t", "rpi4", "-c", cfg, "-o", tmp_path / "b"])
    assert res.exit_code == 0, res.output
    doc = _report(res)
    assert doc["inputs"]["io"]["inputs"][0]["shape"] == [1, 16, 16, 3]
    assert all(o["passed"] for o in doc["inputs"]["model"]["source"]["comparison"]["outputs"].values())


def test_a_pytorch_model_with_two_named_inputs_reads_each_array_by_name(heads_folder, tmp_path):
    """Inputs named by the example dict; only the image (rank 4) is transposed, the vector is not."""
    from foreign_helpers import smooth_images

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "rep.npz", meta=rng.random((80, 4), dtype=np.float32),
             image=smooth_images(80, (3, 16, 16), 7))
    cfg = write_config(tmp_path, f"{NETS}:image_and_meta")
    res = _build(["-t", "rpi4", "-c", cfg, "-o", tmp_path / "o"])
    assert res.exit_code == 0, res.output
    source = _report(res)["inputs"]["model"]["source"]
    assert source["inputs"]["image"]["transposed"] and not source["inputs"]["meta"]["transposed"]
    assert source["comparison"]["outputs"]["output"]["max_abs_error"] < 1e-5


def test_outputs_returned_as_a_dict_are_named_by_its_keys_and_matched_to_pytorch():
    """Two outputs of the same shape: a mix-up between them would show as a mismatch."""
    from edgepipe.foreign.load import load_foreign
    from edgepipe.foreign.reference import compare
    from edgepipe.foreign.spec import parse_model_spec

    conv = load_foreign(parse_model_spec(f"{NETS}:dict_heads"))
    assert conv.outputs == {"logits": "logits", "box": "box"}
    result = compare(conv, {"input": np.random.default_rng(0).random((20, 6), dtype=np.float32)})
    assert result["passed"] and all(o["max_abs_error"] < 1e-6 for o in result["outputs"].values())


def test_the_keras_loader_returns_the_converted_channels_last_model(heads_onnx):
    """``load_keras_model``, the one entry the build and build scripts use, takes an ONNX file too."""
    from edgepipe.keras_io.load import load_keras_model
    from edgepipe.keras_io.names import input_names, output_names

    model = load_keras_model(heads_onnx)
    assert input_names(model) == ["input_1"] and sorted(output_names(model)) == ["mask_out", "scores"]
    assert tuple(model.inputs[0].shape) == (None, 16, 16, 3)
    assert model.count_params() > 0, "the ONNX weights are counted"
