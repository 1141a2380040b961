"""The TFLM arena figure is the true minimum, and no crash or hang of TFLM can spoil it.

The reference is an independent bisection written as plainly as possible: every probe
is its own ``python -c`` process that loads the model with TFLM's Python runtime,
sets zero inputs and invokes twice; exit 0 means the model runs at that arena, any
other exit or a signal means it does not.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from edgepipe.errors import EdgepipeError
from edgepipe.runtimes import tflm

RUNNING = ("stream_int8", "conv1d_wide_int8", "autoencoder_int8", "cnn_int8")

PROBE = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
model = open(sys.argv[1], "rb").read()
it = runtime.Interpreter.from_bytes(model, arena_size=int(sys.argv[2]))
details = it.get_input_details(0)
for _ in range(2):
    it.set_input(np.zeros(details["shape"], details["dtype"]), 0)
    it.invoke()
"""


def probe(path, arena: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, str(path), str(arena)], capture_output=True, timeout=120)


def runs(path, arena: int) -> bool:
    return probe(path, arena).returncode == 0


def bisected_minimum(path, lo: int, hi: int) -> int:
    """Smallest multiple of 16 in (lo, hi] that runs, given it fails at lo and runs at hi."""
    while hi - lo > 16:
        mid = (lo + hi) // 2 // 16 * 16
        if runs(path, mid):
            hi = mid
        else:
            lo = mid
    return hi


@pytest.mark.parametrize("name", RUNNING)
def test_reported_arena_is_the_independently_bisected_minimum(mcu_models, model_bytes, name):
    arena = tflm.measure_arena(model_bytes(name))
    lo, hi = arena.bytes // 2 // 16 * 16, arena.bytes * 2
    assert not runs(mcu_models[name], lo) and runs(mcu_models[name], hi)
    assert bisected_minimum(mcu_models[name], lo, hi) == arena.bytes
    assert arena.method == "tflm:bisection" and arena.verified
    assert arena.printed_bytes <= arena.bytes  # TFLM's printed total is at most a lower hint


def test_printed_total_is_short_of_the_minimum_for_streaming_and_fc_models(model_bytes):
    stream, autoencoder = (tflm.measure_arena(model_bytes(n)) for n in ("stream_int8", "autoencoder_int8"))
    assert stream.printed_bytes < stream.bytes
    assert autoencoder.printed_bytes < autoencoder.bytes


def test_a_segfault_below_the_minimum_costs_only_that_probe(mcu_models, model_bytes):
    # This TFLM build segfaults, not fails, 16 bytes below the autoencoder's minimum.
    arena = tflm.measure_arena(model_bytes("autoencoder_int8"))
    assert probe(mcu_models["autoencoder_int8"], arena.bytes - 16).returncode == -signal.SIGSEGV
    assert arena.verified and arena.crashed_probes >= 1
    assert arena.probes > arena.crashed_probes


def test_a_crash_mid_search_continues_in_a_fresh_child(model_bytes):
    # A plain bisection of [0, 4 MiB] (no printed hint) meets the segfault at 19,136 B
    # before it has converged; the confirmation meets it again.
    data = model_bytes("autoencoder_int8")
    with tflm._child_processes(data, 300.0, "autoencoder") as run:
        arena = tflm._measure(run, "autoencoder", tflm._Bounds(hi=tflm.MIN_PROBE_ARENA))
    assert arena.bytes == tflm.measure_arena(data).bytes and arena.verified
    assert arena.crashed_probes >= 2


@pytest.mark.parametrize("name", RUNNING)
def test_a_model_that_runs_passes_the_tflm_arena_check(model_bytes, target, name):
    report = tflm.tflm_checks(model_bytes(name), target("stm32h7"))
    check = next(c for c in report.checks if c.name == "tflm_arena")
    assert check.status == "pass", check.detail
    assert f"runs at {report.arena.bytes} B, fails at {report.arena.bytes - 16} B" in check.detail


@pytest.mark.parametrize("name, reason", [
    ("gelu_int8", "Didn't find op for builtin opcode 'GELU'"),
    ("mlp_hybrid", "Input type: FLOAT32 with filter type: INT8 not supported"),
])
def test_a_model_tflm_rejects_at_any_size_cannot_run(mcu_models, model_bytes, name, reason):
    rejected = probe(mcu_models[name], 64 << 20)
    assert rejected.returncode == 1 and reason in rejected.stderr.decode()
    with pytest.raises(tflm.TflmError, match="cannot run this model") as err:
        tflm.measure_arena(model_bytes(name), where=f"{name}.tflite")
    assert reason in str(err.value) and isinstance(err.value, EdgepipeError)
