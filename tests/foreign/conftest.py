"""Fixtures for ONNX and PyTorch models: built here once per session, from ``foreign_nets.py``.

Data arrays are channels-first (NCHW), as the source models take them; the
build transposes them (docs/onnx-pytorch.md). Inputs are smooth random
images (not white noise) so int8 calibration sees realistic ranges.
"""

from __future__ import annotations

import numpy as np
import pytest

from foreign_helpers import NETS, smooth_images, write_config  # noqa: F401  (the fixtures use them)


@pytest.fixture(scope="session")
def torch_mod():
    import torch

    torch.set_num_threads(1)
    return torch


@pytest.fixture(scope="session")
def heads_folder(tmp_path_factory):
    """A folder with NCHW representative data (3×16×16) for ``Heads``."""
    folder = tmp_path_factory.mktemp("heads")
    np.savez(folder / "rep.npz", x=smooth_images(96, (3, 16, 16), 0))
    return folder


@pytest.fixture(scope="session")
def heads_onnx(heads_folder, torch_mod):
    """``Heads`` exported to ONNX in the test, as a user's exporter would: fixed batch 1 and
    names with characters TensorFlow refuses ("input.1", "mask/out")."""
    import foreign_nets

    module, example = foreign_nets.heads()
    path = heads_folder / "heads.onnx"
    torch_mod.onnx.export(module, (example,), str(path), input_names=["input.1"], output_names=["scores", "mask/out"],
                          opset_version=17, dynamo=False)
    return path


@pytest.fixture(scope="session")
def kws_folder(tmp_path_factory, torch_mod):
    """NCHW (1×10×8) representative and eval data for ``TinyKws``; eval labels are the float module's own
    top-1, so verify measures how far int8 moves from the float model."""
    import foreign_nets

    folder = tmp_path_factory.mktemp("kws")
    x = smooth_images(160, (1, 10, 8), 1)
    module, _ = foreign_nets.tiny_kws()
    with torch_mod.no_grad():
        y = module(torch_mod.from_numpy(x[96:])).argmax(-1).numpy()
    np.savez(folder / "rep.npz", x=x[:96])
    np.savez(folder / "eval.npz", x=x[96:], y=y)
    np.savez(folder / "eval_nhwc.npz", x=x[96:].transpose(0, 2, 3, 1), y=y)
    return folder
