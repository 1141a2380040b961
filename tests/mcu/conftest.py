"""Fixtures for the microcontroller / NPU back ends: tiny real models, real profiles.

The models are converted once per session by ``build_models.py`` in a child
process (TensorFlow stays out of this process); every test reads the bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgepipe.config.targets import TargetRegistry
from edgepipe.tflite.model import read_tflite

HERE = Path(__file__).resolve().parent
MODELS = ("cnn_int8", "cnn_float", "cnn_wide_int8", "gelu_int8", "mlp_hybrid", "mlp_float16", "mlp_sparse",
          "stream_int8", "conv1d_wide_int8", "autoencoder_int8", "two_heads_int8", "cnn_uint8_out")


@pytest.fixture(scope="session")
def mcu_models(tmp_path_factory) -> dict[str, Path]:
    """name -> path of a .tflite built by build_models.py."""
    out = tmp_path_factory.mktemp("mcu_models")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(HERE / "build_models.py"), str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    paths = {name: out / f"{name}.tflite" for name in MODELS}
    assert all(p.is_file() for p in paths.values())
    return paths


@pytest.fixture(scope="session")
def model_bytes(mcu_models):
    return lambda name: mcu_models[name].read_bytes()


@pytest.fixture(scope="session")
def tflite(mcu_models):
    return lambda name: read_tflite(mcu_models[name])


@pytest.fixture(scope="session")
def target():
    registry = TargetRegistry(search_dirs=[])
    return lambda name: registry.get(name).profile


@pytest.fixture(scope="session")
def changed():
    """changed(profile, memory={"ram": 1024}): a copy with some fields of its sections replaced."""
    def change(profile, **sections):
        update = {key: getattr(profile, key).model_copy(update=values) for key, values in sections.items()}
        return profile.model_copy(update=update)
    return change
