"""No malformed .tflite crashes, hangs or tracebacks edgepipe: seeded mutations through the real CLI.

The mutations (byte flips, truncations, and fields changed through the schema's object API:
shapes, types, buffers, tensor/opcode/subgraph indices, quantization, builtin options,
buffer contents) come from tools/fuzz_tflite.py, which runs the same cases by the ten
thousand; a failing seed here reproduces with ``python tools/fuzz_tflite.py --models DIR
--seed N``. Each case runs ``edgepipe inspect -t rpi4`` and ``-t esp32-s3`` (TFLite Micro
runs the model), and one in five also ``edgepipe verify -t rpi4`` with data shaped like the
input. Every run must exit 0-3 with exactly one JSON document on stdout, no traceback on
stderr, and within the timeout.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SEEDS = range(130)            # about 0.55 s of wall time per case on two cores: ~80 s in all
TIMEOUT = 120                 # seconds per run before it counts as a hang


def _load_fuzzer():
    spec = importlib.util.spec_from_file_location("fuzz_tflite", REPO / "tools" / "fuzz_tflite.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module     # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


fuzz_tflite = _load_fuzzer()


@pytest.fixture(scope="module")
def fuzz_models(tmp_path_factory) -> dict[str, Path]:
    """The tiny real models of tests/mcu/build_models.py, built in a child process (TensorFlow stays out)."""
    out = tmp_path_factory.mktemp("fuzz_models")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "mcu" / "build_models.py"), str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    models = fuzz_tflite.models_in(out)
    assert len(models) >= 10
    return models


def test_mutations_are_reproducible_and_change_the_model(fuzz_models):
    data = fuzz_models["cnn_int8"].read_bytes()
    cases = [fuzz_tflite.mutate(data, seed) for seed in range(40)]
    assert cases == [fuzz_tflite.mutate(data, seed) for seed in range(40)]
    assert all(out != data for _, out in cases)
    kinds = {what.split(" ")[0] for what, _ in cases}
    assert {"byte_flips", "truncate", "tensor_shape", "quantization"} <= kinds, kinds


@pytest.mark.slow
def test_no_mutated_model_crashes_hangs_or_tracebacks(fuzz_models):
    cases = fuzz_tflite.fuzz(SEEDS, fuzz_models, workers=2, verify_every=5, timeout=TIMEOUT)
    runs = [r for c in cases for r in c.runs]
    assert len(cases) == len(SEEDS) and len(runs) >= 2 * len(SEEDS)
    assert {r.command.split()[1] for r in runs} == {"inspect", "verify"}
    violations = [f"seed {c.seed} ({c.model}: {c.mutation}): {v}" for c in cases for v in c.violations]
    assert violations == []
    # The reader refuses a share of the cases (exit 2) and the rest reach the checks and TFLite Micro.
    codes = {r.returncode for r in runs}
    assert {0, 2} <= codes <= fuzz_tflite.ALLOWED_EXITS, codes
