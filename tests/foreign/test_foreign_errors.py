"""What goes wrong with ONNX/PyTorch models is named in one line, with the right exit code.

Exit 2: the user's input (a missing extra, a factory that breaks the
convention, data in the wrong layout, pruning asked for). Exit 3: a converter
failed, or its result disagrees with the source framework.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from click.testing import CliRunner

from foreign_helpers import NETS, write_config
from edgepipe.cli import cli
from edgepipe.errors import EXIT_INTERNAL, EXIT_USAGE


def _build(cfg, out, *extra):
    return CliRunner().invoke(cli, ["build", "-t", "rpi4", "-c", str(cfg), "-o", str(out), "--no-cache", *extra])


def _one_line(res) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


@pytest.fixture(scope="session")
def lp_pool_onnx(tmp_path_factory):
    """A valid ONNX model (Conv → LpPool) with an op onnx2tf does not implement."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
         helper.make_node("LpPool", ["c"], ["y"], name="lp_pool", kernel_shape=[2, 2], strides=[2, 2], p=2)],
        "lp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    folder = tmp_path_factory.mktemp("lp")
    onnx.save(model, folder / "lp.onnx")
    np.savez(folder / "rep.npz", x=np.random.default_rng(1).random((40, 3, 8, 8), dtype=np.float32))
    return folder / "lp.onnx"


def test_an_op_onnx2tf_cannot_convert_is_exit_3_naming_the_op(lp_pool_onnx, tmp_path):
    cfg = write_config(lp_pool_onnx.parent, lp_pool_onnx.name, "lp.yaml")
    res = _build(cfg, tmp_path / "o")
    assert res.exit_code == EXIT_INTERNAL, res.output
    line = _one_line(res)
    assert "LpPool" in line and "'lp_pool'" in line and "onnx2tf" in line and str(lp_pool_onnx) in line
    assert not (tmp_path / "o").exists(), "nothing written"


def test_a_float_model_that_disagrees_with_its_source_is_exit_3_naming_the_output(heads_onnx, torch_mod, tmp_path):
    """The converted model of one ONNX file, held to ONNX Runtime running another (same graph, other weights)."""
    import foreign_nets
    from foreign_helpers import smooth_images
    from edgepipe.foreign import layout
    from edgepipe.foreign.load import load_foreign
    from edgepipe.foreign.onnx_model import ort_runner, parse
    from edgepipe.foreign.reference import check, compare
    from edgepipe.foreign.spec import parse_model_spec

    module, example = foreign_nets.heads()
    with torch_mod.no_grad():
        module.seg.weight.mul_(1.5)
    other = tmp_path / "other.onnx"
    torch_mod.onnx.export(module, (example,), str(other), input_names=["input.1"], output_names=["scores", "mask/out"],
                          opset_version=17, dynamo=False)
    conv = load_foreign(parse_model_spec(str(heads_onnx)))
    x = {"input_1": layout.to_model(smooth_images(8, (3, 16, 16), 3), conv.layouts["input_1"])}
    assert compare(conv, x)["passed"]
    conv.run_source = ort_runner(other.read_bytes(), parse(other.read_bytes(), str(other)))
    result = compare(conv, x)
    assert result["outputs"]["scores"]["passed"], "the class head did not change"
    assert not result["outputs"]["mask_out"]["passed"]
    with pytest.raises(Exception) as err:
        check(result, str(heads_onnx), conv.framework)
    assert err.value.exit_code == EXIT_INTERNAL
    msg = str(err.value)
    assert "output 'mask_out'" in msg and "ONNX Runtime" in msg and "max abs error" in msg and "\n" not in msg


def test_pruning_is_refused_for_these_models_with_the_fix(heads_folder, tmp_path):
    cfg = write_config(heads_folder, f"{NETS}:heads", "prune.yaml")
    res = _build(cfg, tmp_path / "o", "--prune-ratio", "0.5")
    assert res.exit_code == EXIT_USAGE, res.output
    line = _one_line(res)
    assert "(prune)" in line and "not available for a PyTorch model" in line and "Torch-Pruning" in line


def test_data_in_the_wrong_layout_names_the_source_shape(heads_folder, tmp_path):
    np.savez(tmp_path / "nhwc.npz", x=np.zeros((40, 16, 16, 3), np.float32))
    cfg = write_config(tmp_path, f"{NETS}:heads", data={"representative": "nhwc.npz"})
    res = _build(cfg, tmp_path / "o")
    assert res.exit_code == EXIT_USAGE, res.output
    line = _one_line(res)
    assert "nhwc.npz" in line and "(3, 16, 16) (NCHW" in line and "(16, 16, 3)" in line


@pytest.mark.parametrize("missing, extra", [("torch", "torch"), ("onnx2tf", "onnx")])
def test_a_missing_extra_is_exit_2_naming_the_pip_command(heads_folder, heads_onnx, tmp_path, monkeypatch,
                                                          missing, extra):
    monkeypatch.setitem(sys.modules, missing, None)  # what `import` sees when the package is not installed
    model = f"{NETS}:heads" if missing == "torch" else heads_onnx.name
    cfg = write_config(heads_folder, model, f"missing-{missing}.yaml")
    res = _build(cfg, tmp_path / "o")
    assert res.exit_code == EXIT_USAGE, res.output
    assert f"pip install 'edgepipe[{extra}]'" in _one_line(res)


def test_a_factory_that_breaks_the_convention_is_exit_2(heads_folder, tmp_path):
    cfg = write_config(heads_folder, f"{NETS}:not_a_pair", "bad.yaml")
    res = _build(cfg, tmp_path / "o")
    assert res.exit_code == EXIT_USAGE, res.output
    line = _one_line(res)
    assert "not_a_pair" in line and "(torch.nn.Module, example_input)" in line and "found a Heads" in line
    cfg = write_config(heads_folder, f"{NETS}:nothing_here", "bad2.yaml")
    assert "a function named 'nothing_here'" in _one_line(_build(cfg, tmp_path / "o"))


def test_an_op_the_pytorch_exporter_cannot_export_is_exit_3_naming_the_aten_op(tmp_path):
    np.savez(tmp_path / "rep.npz", x=np.random.default_rng(0).random((40, 16), dtype=np.float32))
    res = _build(write_config(tmp_path, f"{NETS}:spectrum"), tmp_path / "o")
    assert res.exit_code == EXIT_INTERNAL, res.output
    line = _one_line(res)
    assert "torch.onnx.export" in line and "'aten::fft_rfft'" in line and "spectrum" in line


def test_a_file_that_is_not_onnx_is_exit_2(tmp_path):
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf at all")
    np.savez(tmp_path / "rep.npz", x=np.zeros((40, 3), np.float32))
    res = _build(write_config(tmp_path, "broken.onnx"), tmp_path / "o")
    assert res.exit_code == EXIT_USAGE, res.output
    line = _one_line(res)
    assert "broken.onnx" in line and "expected a valid ONNX model" in line
