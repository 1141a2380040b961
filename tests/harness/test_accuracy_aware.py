"""The model built to quantize badly: caught, attributed to ``hidden``, repaired or failed."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgepipe
from edgepipe.tflite.model import read_tflite


@pytest.fixture(scope="module")
def repaired(bad_model_path, digits, tmp_path_factory):
    """rpi4 allows int16 activations and float: the loop may repair. With float32 I/O asked for,
    an int16x8 model keeps the I/O types (the converter gives it float32 or int16 I/O, never int8)."""
    return _bad_build(bad_model_path, digits, tmp_path_factory.mktemp("bad_float_io"), "rpi4",
                      {"input_dtype": "float32", "output_dtype": "float32"})


@pytest.fixture(scope="module")
def int8_io(bad_project, tmp_path_factory):
    """rpi4 as it is: int8 input and output, which an int16x8 model cannot have."""
    return edgepipe.build("rpi4", bad_project, out=tmp_path_factory.mktemp("bad_rpi4"))


@pytest.fixture(scope="module")
def int16_on_mcu(bad_project, tmp_path_factory):
    """stm32h7 is int8-only (no float), but TFLite Micro has int16x8 kernels: 16-bit activations
    for the layer at fault keep the model full-integer with int8 I/O."""
    return edgepipe.build("stm32h7", bad_project, out=tmp_path_factory.mktemp("bad_stm32"))


@pytest.fixture(scope="module")
def refused(bad_model_path, digits, tmp_path_factory):
    """coral-edgetpu is an int8-only accelerator on LiteRT: no float, no int16. With equalization and
    bias correction off, nothing may be tried but calibration and per-channel weights."""
    return _bad_build(bad_model_path, digits, tmp_path_factory.mktemp("bad_coral"), "coral-edgetpu",
                      {"equalize": "off", "bias_correction": "off"})


def _bad_build(model_path, digits, folder, target: str, quantization: dict):
    """The bad model built for ``target`` with these quantization settings, its data in ``folder``."""
    from ep_helpers import write_project

    x_tr, _, x_ev, y_ev = digits
    np.savez(folder / "d.npz", x=x_tr[:100], x_eval=x_ev, y_eval=y_ev)
    cfg = write_project(folder, model_path, folder / "d.npz", quantization=quantization)
    return edgepipe.build(target, cfg, out=folder / "out")


def test_caught_and_repaired_within_budget_with_int16_activations(repaired, checks_of):
    rep = repaired.report.to_dict()
    q = rep["quantization_attempts"]
    first, last = q["attempts"][0], q["attempts"][-1]
    assert not first["passed"] and first["drop"] > 50, "int8: the outlier drowns 31 of 32 units of 'hidden'"
    assert q["layers_at_fault"] == ["hidden"]
    assert last["step"] == "int16x8" and last["passed"] and last["drop"] <= 1.0
    assert q["passed"] and q["chosen"] == len(q["attempts"]) - 1
    steps = {a["step"]: a for a in q["attempts"]}
    assert list(steps) == ["as configured", "equalize", "bias-correction", "int16-layers", "int16x8"], \
        "all representative samples already used, per-channel already on: skipped"
    assert steps["int16-layers"]["error"] == ("ai-edge-quantizer gives int8 input/output only; the build asks "
                                             "for float32/float32"), "float32 I/O: the converter's path only"
    assert repaired.exit_code == 0, [c.detail for c in repaired.report.failed_checks]
    assert checks_of(repaired)["accuracy"].measured <= 1.0
    assert rep["quantization"]["scheme"] == "int16x8" and rep["quantization"]["input_dtype"] == "float32"
    model = read_tflite(repaired.artifacts["model.tflite"])
    assert model.input_tensors[0].dtype == "float32" and model.sha256 == rep["model"]["sha256"]
    assert "int16" in {t.dtype for t in model.tensors}, "16-bit activations inside"
    assert any("after 4 attempt(s) the kept model (int16x8) meets it" in n for n in rep["notes"])


def test_int8_only_mcu_repaired_with_int16_layers_full_integer(int16_on_mcu, checks_of):
    rep = int16_on_mcu.report.to_dict()
    q = rep["quantization_attempts"]
    steps = [a["step"] for a in q["attempts"]]
    assert steps[:2] == ["as configured", "fc-per-channel"] and steps[-1] == "int16-layers" and "float" not in steps
    first, last = q["attempts"][0], q["attempts"][-1]
    assert first["recipe"] == {"per_tensor_weights": ["FULLY_CONNECTED"], "layers": {}}, "tflm: per-tensor FC first"
    assert not first["passed"] and last["passed"] and last["int16_layers"] == ["hidden"]
    assert set(last["recipe"]["layers"].values()) == {"int16"} and len(last["recipe"]["layers"]) == 2, \
        "hidden and the classifier reading it"
    assert int16_on_mcu.exit_code == 0, [c.detail for c in int16_on_mcu.report.failed_checks]
    checks = checks_of(int16_on_mcu)
    assert checks["int8_only"].status == "pass" and checks["io_dtype"].status == "pass"
    assert checks["tflm_arena"].status == "pass", "TFLite Micro runs the mixed model"
    model = read_tflite(int16_on_mcu.artifacts["model.tflite"])
    assert [t.dtype for t in model.input_tensors + model.output_tensors] == ["int8", "int8"]
    assert {"int16", "int8"} <= {t.dtype for t in model.tensors} and "float32" not in {t.dtype for t in model.tensors}
    assert rep["quantization"]["int16_layers"] == ["hidden"] and rep["quantization"]["quantizer"] == "ai-edge-quantizer"


def test_int8_only_target_reports_failed_and_names_the_layer(refused, checks_of):
    rep = refused.report.to_dict()
    checks = checks_of(refused)
    assert refused.exit_code == 1 and rep["status"] == "failed"
    acc = checks["accuracy"]
    assert acc.status == "fail" and acc.measured > 50
    assert "layers at fault: hidden: local SQNR" in acc.detail
    q = rep["quantization_attempts"]
    assert [a["step"] for a in q["attempts"]] == ["as configured"] and not q["passed"]
    assert q["layers_at_fault"] == ["hidden"]
    assert checks["int8_only"].status == "pass", "nothing that breaks int8-only was kept"
    model = read_tflite(refused.artifacts["model.tflite"])
    assert model.input_tensors[0].dtype == "uint8", "the best artifact is still written (the profile's uint8 I/O)"
    assert rep["layer_errors"]["at_fault"] == ["hidden"]
    saved = json.loads(refused.artifacts["report.json"].read_text())
    assert saved["exit_code"] == 1 and saved["artifacts"]["layer_errors.png"]["bytes"] > 0


@pytest.mark.slow
def test_per_channel_and_all_samples_are_tried_first(bad_project, digits, tmp_path):
    """With per-tensor weights and a calibration subset, the loop walks every permitted step
    (float32 I/O, so that int16x8 keeps the I/O types asked for)."""
    from ep_helpers import write_project

    x_tr, _, x_ev, y_ev = digits
    np.savez(tmp_path / "d.npz", x=x_tr[:300], x_eval=x_ev, y_eval=y_ev)
    cfg = write_project(tmp_path, _model_of(bad_project), tmp_path / "d.npz",
                        quantization={"per_channel": False, "calibration_samples": 50,
                                      "input_dtype": "float32", "output_dtype": "float32"})
    result = edgepipe.build("rpi4", cfg, out=tmp_path / "out")
    attempts = result.report.to_dict()["quantization_attempts"]["attempts"]
    steps = [(a["step"], a["representative_samples"], a["settings"]["per_channel"], a["passed"]) for a in attempts]
    kept = 300 if attempts[1]["agreement"] > attempts[0]["agreement"] else 50  # an int8 step is kept if closer
    assert steps[:3] == [("as configured", 50, False, False), ("calibration", 300, False, False),
                         ("per-channel", kept, True, False)]
    assert steps[-1][0] == "int16x8" and steps[-1][2:] == (True, True)
    assert result.exit_code == 0


def _model_of(project_path):
    import yaml

    return yaml.safe_load(project_path.read_text())["model"]


@pytest.mark.slow
def test_float_fallback_keeps_the_layer_in_float_with_int8_io(keras_mod, bad_model_path, digits, int8_settings):
    from edgepipe.quantize.recipes import Recipe, convert_with_recipe, layer_scopes
    from edgepipe.runtimes.base import XNNPACK, make_runner
    from edgepipe.tflite.model import parse_tflite

    model = keras_mod.models.load_model(bad_model_path)
    x_tr, _, x_ev, y_ev = digits
    scopes = layer_scopes(model, ("hidden",))
    assert len(scopes) == 2, "hidden's FULLY_CONNECTED and the classifier's, which reads it (not the softmax)"
    data = convert_with_recipe(model, x_tr[:100], int8_settings, Recipe(layers={s: "float" for s in scopes}))
    tfl = parse_tflite(data)
    assert [t.dtype for t in tfl.input_tensors + tfl.output_tensors] == ["int8", "int8"]
    assert tfl.op_counts.get("DEQUANTIZE") and tfl.op_counts.get("QUANTIZE"), "a float island"
    top1 = np.mean(make_runner(XNNPACK, data).predict(x_ev).argmax(1) == y_ev) * 100
    float_top1 = np.mean(model.predict(x_ev, verbose=0).argmax(1) == y_ev) * 100
    assert abs(float_top1 - top1) <= 1.0


def test_int8_io_profile_never_ends_up_with_int16_io(int8_io, checks_of):
    """rpi4 with int8 I/O: 16-bit activations for the layer at fault (ai-edge-quantizer) keep int8 I/O,
    where the converter's whole-model int16x8 could not."""
    rep = int8_io.report.to_dict()
    q = rep["quantization_attempts"]
    steps = {a["step"]: a for a in q["attempts"]}
    assert list(steps) == ["as configured", "equalize", "bias-correction", "int16-layers"]
    assert all(a["settings"]["input_dtype"] == "int8" for a in q["attempts"])
    assert q["passed"] and q["chosen"] == 3 and steps["int16-layers"]["int16_layers"] == ["hidden"]
    assert int8_io.exit_code == 0, [c.detail for c in int8_io.report.failed_checks]
    assert (rep["quantization"]["input_dtype"], rep["quantization"]["output_dtype"]) == ("int8", "int8")
    model = read_tflite(int8_io.artifacts["model.tflite"])
    assert [t.dtype for t in model.input_tensors + model.output_tensors] == ["int8", "int8"]
    assert model.sha256 == rep["model"]["sha256"] and checks_of(int8_io)["io_dtype"].status == "pass"


def test_int8_steps_kept_only_when_they_bring_the_model_closer(int8_io):
    """Each int8 step builds on the best before it and is kept only if closer to the float model
    (agreement, ties broken by output SQNR); the int16 step starts from the best int8 candidate."""
    attempts = int8_io.report.to_dict()["quantization_attempts"]["attempts"]
    first, eq, bc, last = attempts
    closeness = lambda a: (a["agreement"], a["sqnr_db"])  # noqa: E731
    assert eq["transforms"] == ["equalize"]
    best = eq if closeness(eq) > closeness(first) else first
    assert bc["transforms"] == best["transforms"] + ["bias-correction"]
    best = bc if closeness(bc) > closeness(best) else best
    assert last["transforms"] == best["transforms"]
