"""What the verify stage puts in a build's report: three levels, the cross-check, per-layer errors."""

from __future__ import annotations

import edgepipe
from edgepipe.pipeline import verify_stage


def test_the_report_has_three_levels_and_a_plot(tiny_build, checks_of):
    rep = tiny_build.report.to_dict()
    acc = rep["accuracy"]
    assert acc["float"]["top1"] > 85 and acc["quantized"]["top1"] > 85, "float vs labels, quantized vs labels"
    assert acc["agreement"] > 95 and acc["outputs"][0]["quantized_vs_float"]["sqnr_db"] > 15, "quantized vs float"
    cross = acc["cross_check"]
    assert cross["device"] == "litert-xnnpack" and cross["reference"] == "litert-reference"
    assert cross["samples"] == 397 and cross["max_lsb"] == acc["outputs"][0]["device_vs_reference"]["max_lsb"]
    assert acc["runtime"]["batched"] and acc["runtime"]["name"] == "litert-xnnpack"
    lsb = checks_of(tiny_build)["runtime_lsb_diff"]
    assert lsb.status == "pass" and lsb.budget == 1 and lsb.measured <= 1
    if cross["max_lsb"] > 1:  # compounded through the softmax: each kernel is still within 1 LSB
        assert cross["per_op"]["max_lsb"] <= 1 and "per kernel" in lsb.detail
    layers = rep["layer_errors"]
    assert [row["layer"] for row in layers["layers"]] == ["image", "conv", "pool", "flat", "classifier"]
    png = tiny_build.artifacts[verify_stage.PLOT]
    assert png.read_bytes()[:4] == b"\x89PNG" and rep["artifacts"][verify_stage.PLOT]["bytes"] == png.stat().st_size


def test_tflm_target_measures_accuracy_on_tflm_and_localises_any_difference(tmp_path, tiny_model_path, data_npz,
                                                                           checks_of):
    from ep_helpers import write_project

    result = edgepipe.build("stm32h7", write_project(tmp_path, tiny_model_path, data_npz), out=tmp_path / "out")
    acc = result.report.to_dict()["accuracy"]
    assert acc["runtime"]["name"] == "tflm" and acc["cross_check"]["reference"] == "litert-reference"
    lsb = checks_of(result)["runtime_lsb_diff"]
    assert lsb.budget == 1 and lsb.status == "pass" and lsb.measured <= 1
    assert checks_of(result)["accuracy"].status == "pass"
    # A zero budget localises the difference: tflite-micro 2026-10's FULLY_CONNECTED rounds differently.
    (tmp_path / "exact.yaml").write_text("extends: stm32h7\naccuracy:\n  max_lsb_diff: 0\n")
    strict = edgepipe.build(str(tmp_path / "exact.yaml"), write_project(tmp_path, tiny_model_path, data_npz),
                            out=tmp_path / "strict")
    lsb = checks_of(strict)["runtime_lsb_diff"]
    if lsb.status == "fail":
        assert "FULLY_CONNECTED" in lsb.detail and lsb.measured == 1
