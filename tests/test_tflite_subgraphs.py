"""Every subgraph, resource variables and shape signatures of real .tflite models.

``stream_int8`` is a streaming model: its main subgraph runs CALL_ONCE on
subgraph 1, which writes the initial ring-buffer state (an int8 resource
variable of shape (1, 4, 8)) from a constant. Broken and dynamic variants are
made by editing a real model with the schema's object API and re-packing it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from click.testing import CliRunner

from edgepipe.cli import cli
from edgepipe.errors import InputError
from edgepipe.tflite.memory import plan_memory
from edgepipe.tflite.model import parse_tflite
from edgepipe.tflite.rules import int8_only_check, static_shape_check

BUILD_MODELS = Path(__file__).resolve().parent / "mcu" / "build_models.py"


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    """name -> bytes of a model built by tests/mcu/build_models.py (TensorFlow in a child process)."""
    out = tmp_path_factory.mktemp("subgraph_models")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(BUILD_MODELS), str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return lambda name: (out / f"{name}.tflite").read_bytes()


@pytest.fixture(scope="module")
def stream(model_bytes):
    return parse_tflite(model_bytes("stream_int8"), "stream_int8")


def repacked(data: bytes, change=lambda model: None) -> bytes:
    """The model after ``change(ModelT)``, serialised again with the TFL3 identifier."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    change(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_both_subgraphs_are_read_and_the_main_view_stays_subgraph_0(stream):
    main, init = stream.subgraphs
    assert stream.subgraph_count == 2 and (main.index, init.index) == (0, 1)
    assert stream.tensors == main.tensors and stream.operators == main.operators
    assert (stream.inputs, stream.outputs) == (main.inputs, main.outputs)
    assert [op.op for op in init.operators] == ["VAR_HANDLE", "ASSIGN_VARIABLE"]
    assert stream.all_operators == main.operators + init.operators
    assert {op.subgraph for op in init.operators} == {1} and {t.subgraph for t in init.tensors} == {1}
    call_once = next(op for op in main.operators if op.op == "CALL_ONCE")
    assert call_once.calls == (1,) and call_once.label == f"CALL_ONCE #{call_once.index}"
    assert init.operators[0].label == "VAR_HANDLE #0 in subgraph 1"


def test_op_counts_include_the_init_subgraph(stream):
    counts = stream.op_counts
    assert counts["CALL_ONCE"] == 1 and counts["READ_VARIABLE"] == 1
    assert counts["VAR_HANDLE"] == 2 and counts["ASSIGN_VARIABLE"] == 2, "one each in subgraphs 0 and 1"
    assert sum(counts.values()) == len(stream.all_operators) == 12


def test_the_ring_buffer_is_one_int8_resource_variable(stream):
    (var,) = stream.variables
    handle_names = {op.variable for op in stream.all_operators if op.op == "VAR_HANDLE"}
    assert handle_names == {var.name} and "state" in var.name
    assert (var.dtype, var.shape, var.nbytes, var.kind) == ("int8", (1, 4, 8), 32, "resource")
    assert var.to_dict()["bytes"] == 32
    handle = stream.tensors[next(op for op in stream.operators if op.op == "VAR_HANDLE").outputs[0]]
    assert handle.dtype == "resource"


def test_memory_plan_counts_the_variable_as_persistent(stream):
    plan = plan_memory(stream)
    assert plan.persistent_bytes == 32 and plan.persistent == ((stream.variables[0].name, 32),)
    assert plan.peak_bytes == plan.activation_bytes + 32 and plan.activation_bytes > 0
    doc = plan.to_dict()
    assert doc["peak_bytes"] == doc["peak_activation_bytes"] + doc["persistent_bytes"]
    assert doc["persistent"] == [{"name": stream.variables[0].name, "bytes": 32}]


def test_stream_model_is_int8_only_and_static(stream):
    check = int8_only_check(stream)
    assert check.status == "pass", check.detail
    assert static_shape_check(stream).status == "pass"


def test_repacking_an_unchanged_model_reads_the_same(model_bytes, stream):
    again = parse_tflite(repacked(model_bytes("stream_int8")))
    assert again.subgraphs == stream.subgraphs and again.variables == stream.variables


def test_a_dynamic_batch_signature_is_seen_and_passes_a_dynamic_width_fails(model_bytes):
    """MLPerf Tiny's references carry [-1, ...] signatures with [1, ...] shapes: TFLM and Vela run them."""
    original = parse_tflite(model_bytes("cnn_int8"))
    index, shape = original.inputs[0], original.input_tensors[0].shape

    def dynamic_batch(model):
        model.subgraphs[0].tensors[index].shapeSignature = [-1, *shape[1:]]

    model = parse_tflite(repacked(model_bytes("cnn_int8"), dynamic_batch))
    t = model.input_tensors[0]
    assert t.shape == shape and t.shape_signature == (-1, *shape[1:]) and t.is_dynamic
    assert t.to_dict()["shape_signature"] == [-1, *shape[1:]] and t.to_dict()["dynamic"] is True
    assert original.input_tensors[0].shape_signature == shape and not original.input_tensors[0].is_dynamic
    check = static_shape_check(model)
    assert check.status == "pass" and f"the batch axis of {t.name} is dynamic" in check.detail

    def dynamic_width(model):
        model.subgraphs[0].tensors[index].shapeSignature = [1, shape[1], -1, shape[3]]

    check = static_shape_check(parse_tflite(repacked(model_bytes("cnn_int8"), dynamic_width)))
    assert check.status == "fail" and check.measured == 1 and f"{t.name} [1, {shape[1]}, -1, {shape[3]}]" in check.detail


def test_dynamic_tensor_and_shape_op_in_the_init_subgraph_are_named(model_bytes, stream):
    const = stream.subgraphs[1].tensors[1]

    def dynamic_init(model):
        model.subgraphs[1].tensors[1].shapeSignature = [1, -1, 8]
        model.operatorCodes.append(schema.OperatorCodeT())
        model.operatorCodes[-1].builtinCode = model.operatorCodes[-1].deprecatedBuiltinCode = schema.BuiltinOperator.SHAPE
        model.subgraphs[1].operators[1].opcodeIndex = len(model.operatorCodes) - 1

    model = parse_tflite(repacked(model_bytes("stream_int8"), dynamic_init))
    check = static_shape_check(model)
    assert check.status == "fail" and check.measured == 2
    assert f"{const.name} in subgraph 1" in check.detail and "SHAPE #1 in subgraph 1" in check.detail
    assert model.op_counts["SHAPE"] == 1


def test_a_float_state_written_by_the_init_subgraph_breaks_int8_only(model_bytes):
    def float_init(model):
        state = model.subgraphs[1].tensors[1]
        state.type = schema.TensorType.FLOAT32
        model.buffers[state.buffer].data = np.zeros(4 * 32, np.uint8)  # [1, 4, 8] float32: 128 bytes

    check = int8_only_check(parse_tflite(repacked(model_bytes("stream_int8"), float_init)))
    assert check.status == "fail" and check.measured == 1
    assert "ASSIGN_VARIABLE #1 in subgraph 1 (float weights)" in check.detail


def test_a_legacy_variable_tensor_is_persistent_not_planned(model_bytes):
    original = parse_tflite(model_bytes("cnn_int8"))
    index = original.operators[0].outputs[0]

    def make_variable(model):
        model.subgraphs[0].tensors[index].isVariable = True

    model = parse_tflite(repacked(model_bytes("cnn_int8"), make_variable))
    t = model.tensors[index]
    (var,) = model.variables
    assert (var.name, var.dtype, var.shape, var.nbytes, var.kind) == (t.name, "int8", t.shape, t.nbytes, "tensor")
    plan, before = plan_memory(model), plan_memory(original)
    assert plan.tensor_count == before.tensor_count - 1
    assert plan.persistent == ((t.name, (t.nbytes + 15) // 16 * 16),)
    assert before.persistent_bytes == 0 and before.peak_bytes == before.activation_bytes


def _set_input(sg: int, op: int, inputs: list[int]):
    def change(model):
        model.subgraphs[sg].operators[op].inputs = inputs
    return change


def _set(get, attr: str, value):
    def change(model):
        setattr(get(model), attr, value)
    return change


MALFORMED = {
    "tensor index in the init subgraph": (_set_input(1, 1, [0, 99]), "ASSIGN_VARIABLE #1 (subgraph 1) uses 99"),
    "negative tensor index": (_set_input(0, 3, [-5, 0]), "CONCATENATION #3 (subgraph 0) uses -5"),
    "opcode index": (_set(lambda m: m.subgraphs[1].operators[0], "opcodeIndex", 50),
                     "operator #0 (subgraph 1) uses 50"),
    "CALL_ONCE init subgraph": (_set(lambda m: m.subgraphs[0].operators[0].builtinOptions, "initSubgraphIndex", 2),
                                "CALL_ONCE #0 (subgraph 0) uses 2"),
    "subgraph input": (_set(lambda m: m.subgraphs[0], "inputs", [17]), "subgraph 0 input list uses 17"),
    "subgraph output": (_set(lambda m: m.subgraphs[1], "outputs", [2]), "subgraph 1 output list uses 2"),
    "buffer index": (_set(lambda m: m.subgraphs[1].tensors[1], "buffer", 500), "tensor 1 (subgraph 1) uses 500"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_an_index_out_of_range_is_an_input_error(model_bytes, case):
    change, found = MALFORMED[case]
    with pytest.raises(InputError, match=re.escape(found)) as err:
        parse_tflite(repacked(model_bytes("stream_int8"), change), "broken.tflite")
    assert str(err.value).startswith("broken.tflite: expected ")


def test_cli_inspect_of_a_broken_subgraph_exits_2_with_one_line(model_bytes, tmp_path):
    path = tmp_path / "broken.tflite"
    path.write_bytes(repacked(model_bytes("stream_int8"), MALFORMED["CALL_ONCE init subgraph"][0]))
    res = CliRunner().invoke(cli, ["inspect", str(path)])
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and res.output.startswith("error: ") and "CALL_ONCE" in res.output


def test_weights_of_the_wrong_rank_are_an_input_error(model_bytes):
    """Found by tools/fuzz_tflite.py (seed 5209): a FULLY_CONNECTED whose weights lost their shape
    crashed the latency estimate; the reader refuses it, naming the op and the tensor."""
    tfl = parse_tflite(model_bytes("cnn_int8"))
    fc = next(op for op in tfl.operators if op.op == "FULLY_CONNECTED")
    weights = tfl.tensors[fc.inputs[1]]

    def scalar_weights(model):
        t = model.subgraphs[0].tensors[fc.inputs[1]]
        t.shape = []
        t.quantization.scale, t.quantization.zeroPoint = [t.quantization.scale[0]], [0]  # per-tensor

    with pytest.raises(InputError, match=f"FULLY_CONNECTED #{fc.index} weights '{weights.name}' of rank 2"):
        parse_tflite(repacked(model_bytes("cnn_int8"), scalar_weights))
