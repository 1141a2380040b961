"""Builds for microcontroller and NPU targets: TFLM arena, Vela, estimates, firmware sources."""

import json

import pytest

import edgepipe
from edgepipe.emit.files import sha256_file
from edgepipe.tflite.model import read_tflite


@pytest.fixture(scope="module")
def mcu_build(tmp_path_factory):
    return edgepipe.build("esp32-s3", example="digits", out=tmp_path_factory.mktemp("esp32"))


@pytest.fixture(scope="module")
def npu_build(tmp_path_factory):
    return edgepipe.build("ethos-u55", example="digits", out=tmp_path_factory.mktemp("u55"))


def _checks(result):
    return {c.name: c for c in result.report.checks}


def test_tflm_target_holds_the_measured_arena_to_the_ram_budget(mcu_build):
    rep = mcu_build.report.to_dict()
    checks = _checks(mcu_build)
    arena = rep["tflm"]["arena"]["bytes"]
    assert checks["tflm_arena"].status == "pass" and arena > 0
    assert checks["ram"].measured >= arena, "RAM = arena + margin + I/O"
    assert checks["ram"].budget == 320 * 1024
    assert checks["latency"].source == "estimate:cost-model"
    assert "host" not in rep["latency"], "XNNPACK on the build host says nothing about a microcontroller"
    assert rep["latency"]["budget_checked_against"] == "estimate:cost-model"


def test_tflm_target_emits_firmware_sources_and_a_manifest(mcu_build):
    out = mcu_build.out_dir
    header = (out / "model_op_resolver.h").read_text()
    for method in ("AddConv2D", "AddFullyConnected", "AddMaxPool2D", "AddMean", "AddSoftmax"):
        assert method in header
    assert "kTensorArenaSize" in (out / "model_data.h").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {a["path"]: a["sha256"] for a in manifest["artifacts"]}
    assert listed["model.tflite"] == sha256_file(out / "model.tflite")
    assert listed["model_data.cc"] == sha256_file(out / "model_data.cc")


def test_ethos_u_target_compiles_with_vela_and_ships_its_model(npu_build):
    rep = npu_build.report.to_dict()
    checks = _checks(npu_build)
    assert checks["npu_only"].status == "pass"
    assert rep["vela"]["npu_ops"] > 0 and rep["vela"]["cpu_ops"] == 0
    assert checks["latency"].source == "estimate:vela"
    vela_model = read_tflite(npu_build.artifacts["model_vela.tflite"])
    assert any(op.op.startswith("CUSTOM") for op in vela_model.operators), "Vela's ethos-u custom op"


def test_a_model_tflm_cannot_run_gets_no_firmware_header_and_no_guessed_accuracy(tmp_path, digits, data_npz):
    """GELU has no TFLM kernel: the build fails its TFLM check, writes no model_data.h (no arena was
    measured) and does not measure accuracy on other kernels in TFLM's place."""
    from edgepipe.keras_io import import_tensorflow
    from ep_helpers import write_project

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inp)
    x = keras.layers.Dense(16, activation="gelu")(x)
    model = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))
    model.save(tmp_path / "gelu.keras")
    res = edgepipe.build("esp32-s3", write_project(tmp_path, tmp_path / "gelu.keras", data_npz), out=tmp_path / "out",
                         cache=False)
    checks = _checks(res)
    assert res.exit_code == 1 and checks["tflm_ops"].status == "fail" and "GELU" in checks["tflm_ops"].detail
    assert checks["tflm_arena"].status == "skip"
    assert not (tmp_path / "out" / "model_data.h").exists() and "model_data.h" not in res.artifacts
    assert any("no firmware sources" in n for n in res.report.notes)
    acc = checks["accuracy"]
    assert acc.status == "fail" and acc.source == "measured:tflm" and acc.detail.startswith("not measured: ")
    assert "GELU" in acc.detail, "TFLM's own reason"
