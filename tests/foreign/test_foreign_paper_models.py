"""Architectures from papers, built in PyTorch here (no weights can be downloaded): MLPerf Tiny's DS-CNN
keyword spotter on an ESP32-S3 (TFLite Micro) and a MobileNetV2 at width 0.35 on a Raspberry Pi 4."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from foreign_helpers import NETS, smooth_images, write_config
from edgepipe.cli import cli


@pytest.mark.slow
@pytest.mark.parametrize("factory, shape, target, runtime", [
    ("dscnn_kws", (1, 49, 10), "esp32-s3", "tflm"),
    ("mobilenet_v2_small", (3, 64, 64), "rpi4", "litert-xnnpack"),
])
def test_a_paper_architecture_converts_matches_pytorch_and_passes_int8(tmp_path, factory, shape, target, runtime):
    np.savez(tmp_path / "rep.npz", x=smooth_images(120, shape, 4))
    cfg = write_config(tmp_path, f"{NETS}:{factory}", quantization={"calibration_samples": 80})
    res = CliRunner().invoke(cli, ["build", "-t", target, "-c", str(cfg), "-o", str(tmp_path / "o"), "--no-cache",
                                   "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    cmp = doc["inputs"]["model"]["source"]["comparison"]
    assert cmp["passed"] and cmp["outputs"]["output"]["max_abs_error"] < 1e-5
    acc = doc["accuracy"]
    assert acc["runtime"]["name"] == runtime
    assert acc["outputs"][0]["quantized_vs_float"]["sqnr_db"] > 30
