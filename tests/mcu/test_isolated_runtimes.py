"""Every interpreter in a worker process: a crash is a RuntimeFailure naming the runtime, never a dead edgepipe."""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe.runtimes.base import REFERENCE, TFLM, XNNPACK, in_process_runner, make_runner
from edgepipe.runtimes.isolated import IsolatedRunner, RuntimeFailure


def test_a_tflm_segfault_is_a_failure_naming_the_runtime_and_the_signal(model_bytes):
    """The streaming model at a 256-byte arena makes TFLM's allocator segfault (real TFLM, no injection)."""
    with pytest.raises(RuntimeFailure) as err:
        IsolatedRunner(TFLM, model_bytes("stream_int8"), arena=256)
    assert err.value.runtime == TFLM and err.value.kind == "crashed (SIGSEGV)"
    assert str(err.value).startswith("tflm crashed (SIGSEGV) while loading the model")
    x = np.zeros((3, 1, 8), np.float32)
    after = make_runner(TFLM, model_bytes("stream_int8"))  # this process lives on, and so do new workers
    assert [o.shape for o in after.raw(x)] == [(3, 4)]


def test_a_runtime_refusal_carries_the_runtimes_reason(model_bytes):
    with pytest.raises(RuntimeFailure, match="refused the model while loading the model") as err:
        IsolatedRunner(TFLM, model_bytes("gelu_int8"), arena=1 << 20)
    assert "GELU" in str(err.value)


def test_no_answer_within_the_time_limit_is_a_failure_and_the_worker_is_gone(model_bytes):
    runner = IsolatedRunner(REFERENCE, model_bytes("cnn_wide_int8"), timeout=1e-6)
    with pytest.raises(RuntimeFailure, match="did not answer within the time limit while running the model"):
        runner.raw(np.random.default_rng(0).random((64, 32, 32, 3), np.float32))
    assert runner._worker._proc is None


@pytest.mark.parametrize("name", [XNNPACK, REFERENCE, TFLM])
def test_isolated_outputs_equal_the_in_process_runner(model_bytes, name):
    data = model_bytes("cnn_int8")
    x = np.random.default_rng(1).random((20, 32, 32, 3), np.float32)
    isolated = make_runner(name, data)
    try:
        got = isolated.raw(x)
    finally:
        isolated.close()
    want = in_process_runner(name, data).raw(x)
    assert len(got) == len(want) == 1 and np.array_equal(got[0], want[0]) and got[0].dtype == np.int8


def test_a_worker_over_its_memory_limit_fails_instead_of_taking_the_host(model_bytes):
    runner = IsolatedRunner(XNNPACK, model_bytes("cnn_int8"), memory_limit=400 << 20)
    assert runner.raw(np.zeros((8, 32, 32, 3), np.float32))[0].shape == (8, 10)
    with pytest.raises(RuntimeFailure, match="MemoryError|crashed"):
        runner.raw(np.zeros((20000, 32, 32, 3), np.float32))  # 245 MB of input, copied as it is quantized
