"""Per-layer attribution: TFLite tensors back to Keras layer names, the culprit ranked first."""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe.tflite.model import parse_tflite
from edgepipe.harness.attribution import attribute, plot, tensor_owners


@pytest.fixture(scope="module")
def bad(keras_mod, bad_model_path, digits, int8_settings):
    from edgepipe.keras_io.convert import convert

    model = keras_mod.models.load_model(bad_model_path)
    return model, convert(model, digits[0][:100], int8_settings)


def test_tflite_tensors_map_back_to_keras_layer_names(keras_mod, tiny_model_path, tiny_tflite):
    model = keras_mod.models.load_model(tiny_model_path)
    tfl = parse_tflite(tiny_tflite)
    owners = tensor_owners(tfl, [layer.name for layer in model.layers])
    by_op = {tfl.producers()[i].op: name for i, name in owners.items()}
    assert by_op == {"CONV_2D": "conv", "MAX_POOL_2D": "pool", "RESHAPE": "flat",
                     "FULLY_CONNECTED": "classifier", "SOFTMAX": "classifier"}
    conv = next(t for t in tfl.tensors if owners.get(t.index) == "conv")
    assert "conv_1/" in conv.name, "Keras 3 scopes carry a _1 suffix the mapping strips"


def test_the_outlier_layer_is_named_with_its_figures(bad, digits):
    model, tfl_bytes = bad
    attr = attribute(model, tfl_bytes, digits[2][:128])
    worst = attr.worst(1)[0]
    assert worst.layer == "hidden" and worst.kind == "Dense"
    assert worst.local_sqnr_db < 3, "the int8 output scale drowns 31 of 32 units"
    assert worst.signal_lsb < 1 and worst.scale > 5, "typical unit below one LSB of a ~7.9 scale"
    by_name = {e.layer: e for e in attr.layers}
    assert by_name["classifier"].local_sqnr_db > 20, "downstream: inherits the error, adds little"
    assert by_name["classifier"].sqnr_db < 3, "...but its cumulative error is large"
    assert [e.layer for e in attr.layers] == ["image", "flat", "hidden", "classifier"]
    assert "hidden: local SQNR" in worst.summary()


def test_the_plot_is_a_png_with_one_bar_pair_per_layer(bad, digits, tmp_path):
    model, tfl_bytes = bad
    path = plot(attribute(model, tfl_bytes, digits[2][:32]), tmp_path / "layer_errors.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert not list(tmp_path.glob(".*.tmp")), "written atomically"


def test_a_well_quantized_model_has_no_layer_below_20_db(keras_mod, tiny_model_path, tiny_tflite, digits):
    attr = attribute(keras_mod.models.load_model(tiny_model_path), tiny_tflite, digits[2][:64])
    assert attr.layers and all(e.local_sqnr_db > 20 for e in attr.layers), [e.summary() for e in attr.layers]
    assert np.isfinite(attr.worst(1)[0].local_sqnr_db)
