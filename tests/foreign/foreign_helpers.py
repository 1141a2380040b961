"""Helpers of the ONNX and PyTorch tests (a module of its own: ``from conftest import`` resolves to
whichever conftest pytest loaded last)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
NETS = HERE / "foreign_nets.py"


def smooth_images(n: int, shape: tuple, seed: int) -> np.ndarray:
    """``n`` channels-first samples of ``shape`` in [0, 1]: random low-frequency patterns."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    f = rng.uniform(0.5, 3.0, (n, c, 2, 1, 1))
    p = rng.uniform(0, 2 * np.pi, (n, c, 1, 1))
    x = 0.5 + 0.25 * np.sin(2 * np.pi * (f[:, :, 0] * yy + f[:, :, 1] * xx) + p)
    x += rng.normal(0, 0.05, x.shape)
    return np.clip(x, 0, 1).astype(np.float32)


def write_config(folder: Path, model: str, name: str = "edgepipe.yaml", **extra) -> Path:
    cfg = {"model": model, "data": {"representative": "rep.npz"}, "task": "raw",
           "quantization": {"calibration_samples": 64}}
    cfg.update(extra)
    path = folder / name
    path.write_text(yaml.safe_dump(cfg))
    return path
