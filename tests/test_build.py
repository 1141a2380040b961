"""End-to-end builds with the real converter and the real LiteRT interpreter."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgepipe.cli import cli
from edgepipe.tflite.model import read_tflite


def test_build_report_has_every_figure_and_check(tiny_build):
    rep = tiny_build.report.to_dict()
    assert tiny_build.exit_code == 0, [c.detail for c in tiny_build.report.failed_checks]
    assert rep["schema"] == "edgepipe.build-report/1" and rep["status"] == "passed"
    acc = rep["accuracy"]
    assert acc["float"]["top1"] > 85 and acc["quantized"]["top1"] > 85
    assert abs(acc["float"]["top1"] - acc["quantized"]["top1"]) <= 1.0
    assert acc["agreement"] > 95 and acc["output_error"]["sqnr_db"] > 15
    assert rep["model"]["weight_bytes"] < rep["model"]["params"] * 1.5, "int8 weights: ~1 byte per param"
    names = {c["name"]: c for c in rep["checks"]}
    assert {"io_dtype", "accuracy", "flash", "ram", "latency"} <= set(names)
    assert names["flash"]["budget"] == 32 * 1024 * 1024 and names["flash"]["measured"] == rep["model"]["tflite_bytes"]
    assert rep["latency"]["host"]["source"] == "measured:host" and rep["latency"]["host"]["threads"] == 4
    assert rep["inputs"]["model"]["sha256"] and rep["inputs"]["eval"]["samples"] == 397
    assert rep["tools"]["tensorflow"] and rep["tools"]["ai-edge-litert"]


def test_artifacts_are_an_int8_tflite_and_the_report(tiny_build):
    model = read_tflite(tiny_build.artifacts["model.tflite"])
    assert [t.dtype for t in model.input_tensors] == ["int8"]
    assert [t.dtype for t in model.output_tensors] == ["int8"]
    assert model.input_tensors[0].shape == (1, 8, 8, 1), "batch fixed to 1"
    saved = json.loads(tiny_build.artifacts["report.json"].read_text())
    assert saved["artifacts"]["model.tflite"]["sha256"] == model.sha256


def test_peak_memory_estimate_covers_the_largest_activation(tiny_build):
    mem = tiny_build.report.to_dict()["memory"]
    # conv output 8x8x8 int8 = 512 bytes lives together with the 64-byte input
    assert mem["largest_tensor_bytes"] == 512
    assert mem["lower_bound_bytes"] <= mem["peak_activation_bytes"] < 4096


def test_cli_build_fails_with_exit_1_on_a_budget_and_still_writes(tmp_path, tiny_model_path, data_npz):
    from ep_helpers import write_project

    cfg = write_project(tmp_path, tiny_model_path, data_npz)
    (tmp_path / "tiny-board.yaml").write_text("extends: rpi4\nmemory:\n  flash: 1KiB\n")
    res = CliRunner().invoke(cli, ["build", "-t", str(tmp_path / "tiny-board.yaml"), "-c", str(cfg),
                                   "-o", str(tmp_path / "out")])
    assert res.exit_code == 1, res.output
    assert "FAILED" in res.output and "flash" in res.output and "OVER the budget 1.0 KiB" in res.output
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["status"] == "failed" and rep["exit_code"] == 1
    assert (tmp_path / "out" / "model.tflite").stat().st_size > 1024


def test_int8_only_target_fails_on_a_float_island(tmp_path, digits):
    """ELU has no int8 kernel: the converter silently inserts DEQUANTIZE/QUANTIZE."""
    import edgepipe
    import keras
    from ep_helpers import write_project

    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inp)
    x = keras.layers.Dense(16, activation="elu", name="hidden")(x)
    out = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inp, out)
    model.save(tmp_path / "elu.keras")
    x_tr, _, x_ev, y_ev = digits
    np.savez(tmp_path / "d.npz", x=x_tr[:50], x_eval=x_ev[:40], y_eval=y_ev[:40])
    cfg = write_project(tmp_path, tmp_path / "elu.keras", tmp_path / "d.npz")
    result = edgepipe.build("stm32h7", cfg, out=tmp_path / "out")
    check = next(c for c in result.report.checks if c.name == "int8_only")
    assert check.status == "fail" and result.exit_code == 1
    assert "DEQUANTIZE" in check.detail and "ELU" in check.detail


def test_h5_and_savedmodel_inputs_build(tmp_path, tiny_model_path, data_npz):
    import edgepipe
    import keras
    from ep_helpers import write_project

    model = keras.models.load_model(tiny_model_path)
    model.save(tmp_path / "m.h5")
    model.export(tmp_path / "saved", verbose=False)
    for path in (tmp_path / "m.h5", tmp_path / "saved"):
        cfg = write_project(tmp_path, path, data_npz)
        result = edgepipe.build("rpi4", cfg, out=tmp_path / f"out-{path.stem}")  # not into the SavedModel
        acc = result.report.to_dict()["accuracy"]
        assert acc["quantized"]["top1"] > 85, path


def test_uint8_io_target_gets_uint8_io(tmp_path, tiny_model_path, data_npz):
    import edgepipe
    from ep_helpers import write_project

    cfg = write_project(tmp_path, tiny_model_path, data_npz)
    result = edgepipe.build("coral-edgetpu", cfg, out=tmp_path / "out")
    model = read_tflite(result.artifacts["model.tflite"])
    assert model.input_tensors[0].dtype == "uint8" and model.output_tensors[0].dtype == "uint8"
    assert next(c for c in result.report.checks if c.name == "int8_only").status == "pass"


@pytest.mark.slow
def test_bundled_example_builds_as_the_readme_says(tmp_path):
    res = CliRunner().invoke(cli, ["build", "--example", "digits", "--target", "rpi4", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "PASSED" in res.output and "top-1" in res.output
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["accuracy"]["quantized"]["top1"] > 97
