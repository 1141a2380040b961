"""Spec parsing and layouts: what ``model:`` means, and how channels-first arrays become channels-last."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgepipe.config.project import load_project
from edgepipe.foreign.layout import channels_last, detect, to_model, to_source
from edgepipe.foreign.spec import parse_model_spec


def test_model_specs_are_told_apart_by_their_text():
    assert parse_model_spec("nets/kws.py:make").kind == "torch"
    assert parse_model_spec("nets/kws.py:make").path == Path("nets/kws.py")
    assert parse_model_spec("mypkg.nets:make").module == "mypkg.nets"
    assert parse_model_spec("m.onnx").kind == "onnx"
    assert parse_model_spec("m.keras") is None and parse_model_spec("saved_model_dir") is None


def test_an_importable_factory_is_not_joined_to_the_config_folder(tmp_path):
    cfg = tmp_path / "edgepipe.yaml"
    cfg.write_text("model: mypkg.nets:make\n")
    assert load_project(cfg).model_path() == Path("mypkg.nets:make")
    cfg.write_text("model: nets/kws.py:make\n")
    assert load_project(cfg).model_path() == tmp_path / "nets/kws.py:make"
    cfg.write_text("model: m.onnx\n")
    assert load_project(cfg).model_path() == tmp_path / "m.onnx"


def test_layouts_follow_the_converter_and_round_trip():
    assert detect([None, 3, 16, 12], [None, 16, 12, 3]).perm == (0, 2, 3, 1)
    assert detect([None, 40, 8], [None, 8, 40]).source == "NCW"
    assert not detect([None, 16, 12, 3], [None, 16, 12, 3]).moved, "a channels-last source stays"
    assert not detect([None, 10], [None, 10]).moved
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    nhwc = to_model(x, channels_last(4))
    assert nhwc.shape == (2, 4, 5, 3) and nhwc[1, 2, 3, 0] == x[1, 0, 2, 3]
    np.testing.assert_array_equal(to_source(nhwc, channels_last(4)), x)
