"""A build on a TFLite Micro target with equalization and bias correction on: what the report records."""

from __future__ import annotations

import pytest

import edgepipe
from edgepipe.tflite.model import read_tflite


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return edgepipe.build("esp32-s3", example="digits", out=tmp_path_factory.mktemp("techniques"), cache=False,
                          overrides={"quantization.equalize": "on", "quantization.bias_correction": "on"})


def test_techniques_applied_and_recorded(built):
    assert built.exit_code == 0, [c.detail for c in built.report.failed_checks]
    q = built.report.to_dict()["quantization"]
    assert q["techniques"] == {"fc_weights": "auto", "equalize": "on", "bias_correction": "on"}
    assert q["equalize"]["pairs"] == [{"first": "conv1", "second": "conv2", "between": ["bn1", "relu1"]}]
    assert {"conv1", "conv2", "conv3", "classifier"} <= set(q["bias_correction"]["layers"])
    assert q["transforms"] == ["equalize", "bias-correction"]


def test_fc_weights_per_tensor_on_tflm_with_measured_cost(built, checks_of):
    q = built.report.to_dict()["quantization"]
    fc = q["fc_weights"]
    assert fc["setting"] == "auto" and fc["chosen"] == "per-tensor" and q["quantizer"] == "ai-edge-quantizer"
    pc, pt = fc["measured"]["per-channel"], fc["measured"]["per-tensor"]
    assert pt["bytes"] < pc["bytes"] and pt["tflm_arena_bytes"] <= pc["tflm_arena_bytes"]
    model = read_tflite(built.artifacts["model.tflite"])
    assert model.size == pt["bytes"]
    weights = [model.tensors[op.inputs[1]] for op in model.operators if op.op == "FULLY_CONNECTED"]
    assert [len(w.scale) for w in weights] == [1]
    assert [t.dtype for t in model.input_tensors + model.output_tensors] == ["int8", "int8"]
    checks = checks_of(built)
    assert checks["int8_only"].status == "pass" and checks["tflm_arena"].status == "pass"
