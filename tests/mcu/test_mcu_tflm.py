"""TFLite Micro back end: op support, measured arena, bit-exactness, refusals, crashes."""

from __future__ import annotations

import os

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edgepipe.errors import EdgepipeError, InputError
from edgepipe.runtimes import tflm
from edgepipe.runtimes.tflm_ops import STATIC_BUILTINS


def test_static_op_table_matches_the_installed_runtime():
    ops = tflm.supported_ops()
    assert ops.source.startswith("tflite_micro runtime")
    assert ops.builtins == STATIC_BUILTINS
    assert "GELU" not in ops.builtins and "DENSIFY" not in ops.builtins
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= ops.builtins


def test_arena_is_measured_and_is_the_smallest_that_works(model_bytes):
    data = model_bytes("cnn_int8")
    arena = tflm.measure_arena(data)
    assert arena.method == "tflm:bisection"
    assert arena.bytes > 0 and arena.verified
    assert arena.bytes < arena.probe_arena
    tflm.TflmRunner(data, arena_size=arena.bytes)  # loads at the measured size
    with pytest.raises(tflm.TflmError, match="allocate"):
        tflm.TflmRunner(data, arena_size=arena.bytes // 2)


def test_tflm_is_bit_exact_with_litert_reference_kernels(model_bytes):
    data = model_bytes("cnn_int8")
    x = np.random.default_rng(1).integers(-128, 128, size=(6, 32, 32, 3), dtype=np.int8)
    ours = tflm.TflmRunner(data).run(x)[0]
    ref = Interpreter(model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    ref.allocate_tensors()
    expected = []
    for sample in x:
        ref.set_tensor(ref.get_input_details()[0]["index"], sample[None])
        ref.invoke()
        expected.append(ref.get_tensor(ref.get_output_details()[0]["index"]).copy())
    assert ours.dtype == np.int8 and ours.shape == (6, 10)
    assert np.array_equal(ours, np.concatenate(expected))
    assert np.array_equal(tflm.run_isolated(data, x)[0], ours)


def test_predict_takes_floats_and_returns_probabilities(model_bytes):
    x = np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32)
    y = tflm.TflmRunner(model_bytes("cnn_int8")).predict(x)
    assert y.shape == (3, 10) and y.dtype == np.float32
    assert np.allclose(y.sum(axis=1), 1.0, atol=0.05)


def test_int8_cnn_passes_every_tflm_check(model_bytes, target):
    report = tflm.tflm_checks(model_bytes("cnn_int8"), target("stm32h7"))
    assert report.passed, [c.detail for c in report.checks if not c.passed]
    names = [c.name for c in report.checks]
    assert names == ["tflm_ops", "tflm_hybrid", "tflm_sparse", "tflm_float16", "tflm_arena", "ram", "flash"]
    assert report.arena_bytes_with_margin > report.arena.bytes
    assert report.to_dict()["arena"]["bytes"] == report.arena.bytes


def test_ram_check_counts_arena_margin_and_io_buffers(model_bytes, tflite, target, changed):
    model = tflite("cnn_int8")
    tight = changed(target("stm32h7"), memory={"ram": 4096})
    report = tflm.tflm_checks(model.data, tight)
    ram = next(c for c in report.checks if c.name == "ram")
    io = 32 * 32 * 3 + 10
    assert ram.status == "fail"
    assert ram.measured == tflm.arena_with_margin(report.arena.bytes, tight) + io
    assert "OVER" in ram.detail


@pytest.mark.parametrize("name, check, blamed", [
    ("gelu_int8", "tflm_ops", "GELU"),
    ("mlp_hybrid", "tflm_hybrid", "FULLY_CONNECTED"),
    ("mlp_float16", "tflm_float16", "DEQUANTIZE"),
    ("mlp_sparse", "tflm_sparse", "DENSIFY"),
])
def test_models_tflm_cannot_run_fail_a_check_naming_the_op(model_bytes, target, name, check, blamed):
    report = tflm.tflm_checks(model_bytes(name), target("stm32h7"))
    failed = {c.name: c for c in report.checks if c.status == "fail"}
    assert check in failed and blamed in failed[check].detail
    assert report.arena is None and not report.passed


def test_float_model_has_tflm_kernels(model_bytes, tflite):
    # TFLM does run float models; the int8-only rule of MCU targets is a separate check.
    checks = tflm.compat_checks(tflite("cnn_float"))
    assert all(c.passed for c in checks)
    assert tflm.measure_arena(model_bytes("cnn_float")).bytes > tflm.measure_arena(model_bytes("cnn_int8")).bytes


def test_tflm_reason_reaches_the_error(model_bytes):
    with pytest.raises(tflm.TflmError) as err:
        tflm.measure_arena(model_bytes("gelu_int8"), where="gelu.tflite")
    assert "GELU" in str(err.value) and str(err.value).startswith("gelu.tflite:")
    assert isinstance(err.value, EdgepipeError)


def test_corrupt_model_is_an_input_error_before_tflm(model_bytes):
    with pytest.raises(InputError):
        tflm.measure_arena(model_bytes("cnn_int8")[:3000])


def test_captured_stderr_sees_writes_to_file_descriptor_2():
    from edgepipe.fdcapture import captured

    with captured((2,)) as log:
        os.write(2, b"from C: Arena allocation total 123 bytes\n")
    assert "Arena allocation total 123 bytes" in log.text


def test_bisection_finds_the_same_minimum(model_bytes):
    # For this CNN, TFLM's printed total happens to be the minimum (not so for every model).
    data = model_bytes("cnn_int8")
    isolated = tflm.measure_arena(data)
    in_process = tflm.measure_arena(data, isolate=False)
    assert in_process.method == "tflm:bisection" and in_process.verified
    assert in_process.bytes == isolated.bytes == isolated.printed_bytes


def test_lifetime_planner_estimate_is_within_the_measured_arena(model_bytes, tflite):
    memory = pytest.importorskip("edgepipe.tflite.memory")
    arena = tflm.measure_arena(model_bytes("cnn_int8"))
    plan = memory.plan_memory(tflite("cnn_int8"))
    assert arena.head_bytes + arena.tail_bytes == arena.printed_bytes
    assert plan.lower_bound_bytes <= arena.head_bytes  # no planner beats the live-bytes bound
    assert plan.peak_bytes <= arena.bytes  # the planner sees activations only, not TFLM's tail
