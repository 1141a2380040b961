"""Shapes real third-party models have, judged right: found on MLPerf Tiny and pip-package models.

- a -1 batch in the signature (every MLPerf Tiny reference) with a [1, ...] shape runs on TFLM and Vela;
- a uint8 output (microWakeWord) is an I/O-contract question, not a float op;
- several outputs (detectors) get every static check from ``verify`` without data;
- a model that falls back to the CPU on Ethos-U needs the CPU's TFLM arena, not Vela's 0 B of SRAM.
"""

from __future__ import annotations

import json

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from click.testing import CliRunner

import edgepipe
from edgepipe.cli import cli


def _with_dynamic_batch(data: bytes) -> bytes:
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    for t in model.subgraphs[0].tensors:
        if t.shape is not None and len(t.shape) and not (model.buffers[t.buffer].data is not None):
            t.shapeSignature = [-1, *[int(d) for d in t.shape[1:]]]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_a_dynamic_batch_signature_passes_where_tflm_runs_it(mcu_models, tmp_path):
    path = tmp_path / "dynamic_batch.tflite"
    path.write_bytes(_with_dynamic_batch(mcu_models["cnn_int8"].read_bytes()))
    res = edgepipe.inspect(path, "stm32h7")
    checks = {c.name: c for c in res.checks}
    assert res.model.input_tensors[0].shape_signature[0] == -1
    assert checks["static_shapes"].status == "pass" and "runs at batch 1" in checks["static_shapes"].detail
    assert checks["tflm_arena"].status == "pass", "TFLM ran it"
    assert all(c.passed for c in res.checks), [c for c in res.checks if not c.passed]


def test_a_uint8_output_is_not_a_float_op(mcu_models):
    checks = {c.name: c for c in edgepipe.inspect(mcu_models["cnn_uint8_out"], "esp32-s3").checks}
    assert checks["int8_only"].status == "pass"
    assert checks["io_dtype"].status == "fail" and "uint8" in checks["io_dtype"].detail, "the contract says int8"
    assert checks["tflm_arena"].status == "pass"


def test_verify_without_data_judges_a_model_with_two_outputs(mcu_models, tmp_path):
    res = CliRunner().invoke(cli, ["verify", str(mcu_models["two_heads_int8"]), "-t", "esp32-s3", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    names = [c["name"] for c in doc["checks"]]
    assert {"io_dtype", "int8_only", "static_shapes", "tflm_arena", "ram", "flash", "latency"} <= set(names)
    assert len(doc["model"]["outputs"]) == 2
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 16, 16, 3), np.float32), y=np.zeros(4, np.int64))
    with_data = CliRunner().invoke(cli, ["verify", str(mcu_models["two_heads_int8"]), "-t", "esp32-s3",
                                         "-d", str(tmp_path / "d.npz")])
    assert with_data.exit_code == 0, with_data.output  # several outputs are measured, each by name
    assert "UNVERIFIED" in with_data.output, "no float model to compare the outputs with: not PASSED"


def test_ethos_u_ram_counts_the_cpu_arena_when_ops_fall_back(mcu_models):
    checks = {c.name: c for c in edgepipe.inspect(mcu_models["cnn_float"], "ethos-u55").checks}
    ram, arena = checks["ram"], edgepipe.inspect(mcu_models["cnn_float"], "stm32h7").checks
    tflm_arena = next(c.measured for c in arena if c.name == "tflm_arena")
    assert checks["npu_only"].status == "fail", "a float model runs on the Cortex-M"
    assert ram.source == "measured:host:tflm+estimate:vela" and ram.measured > tflm_arena > 0
    assert "the larger of Vela SRAM (0 B)" in ram.detail
