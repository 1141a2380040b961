"""ai-edge-quantizer recipes on real runtimes: int8 I/O, per-tensor FC, int16 layers, inline weights."""

from __future__ import annotations

import pytest

from edgepipe.tflite import rules
from edgepipe.tflite.model import parse_tflite


@pytest.fixture(scope="module")
def fc_pair(fc_model, fc_samples, int8_io):
    from edgepipe.keras_io.convert import convert
    from edgepipe.quantize.recipes import Recipe, convert_with_recipe

    return (convert(fc_model, fc_samples, int8_io),
            convert_with_recipe(fc_model, fc_samples, int8_io, Recipe(("FULLY_CONNECTED",))))


def _fc_weight_scales(tfl) -> list[int]:
    return [len(tfl.tensors[op.inputs[1]].scale) for op in tfl.operators if op.op == "FULLY_CONNECTED"]


def test_per_tensor_fc_is_smaller_in_file_and_tflm_arena(fc_pair):
    from edgepipe.runtimes.tflm import measure_arena

    per_channel, per_tensor = (parse_tflite(b) for b in fc_pair)
    assert _fc_weight_scales(per_channel) == [48, 8, 48, 64] and _fc_weight_scales(per_tensor) == [1, 1, 1, 1]
    assert [t.dtype for t in per_tensor.input_tensors + per_tensor.output_tensors] == ["int8", "int8"]
    assert rules.int8_only_check(per_tensor).passed
    assert per_tensor.size < per_channel.size
    assert measure_arena(fc_pair[1]).bytes < measure_arena(fc_pair[0]).bytes


def test_int16_layer_stays_full_integer_and_runs_on_tflm(ds_model, ds_samples, int8_io):
    from edgepipe.quantize.recipes import Recipe, convert_with_recipe, layer_scopes
    from edgepipe.runtimes.base import REFERENCE, make_runner
    from edgepipe.runtimes.tflm import measure_arena

    scopes = layer_scopes(ds_model, ("dw_relu",))
    assert len(scopes) == 2, "the depthwise conv (its BN and ReLU fused) and the pointwise conv reading it"
    data = convert_with_recipe(ds_model, ds_samples, int8_io, Recipe(layers={s: "int16" for s in scopes}))
    tfl = parse_tflite(data)
    dtypes = {t.dtype for t in tfl.tensors}
    assert "int16" in dtypes and "float32" not in dtypes and tfl.op_counts["QUANTIZE"] == 2
    assert [t.dtype for t in tfl.input_tensors + tfl.output_tensors] == ["int8", "int8"]
    assert rules.int8_only_check(tfl).passed
    assert measure_arena(data).bytes > 0
    assert make_runner(REFERENCE, data).predict(ds_samples[:8]).shape == (8, 10)


def test_large_weights_are_inlined_for_tflm(keras_mod):
    """ai-edge-quantizer puts >= 256 KiB of weights after the flatbuffer; TFLM then copies them into its arena."""
    import numpy as np

    from edgepipe.quantize.flatbuffer import has_external_buffers
    from edgepipe.quantize.recipes import Recipe, quantize, signature_samples
    from edgepipe.keras_io.convert import convert_float
    from edgepipe.runtimes.tflm import measure_arena

    keras = keras_mod
    keras.utils.set_random_seed(0)
    inp = keras.Input((640,), name="x")
    model = keras.Model(inp, keras.layers.Dense(512, name="wide")(inp))
    x = np.random.RandomState(0).randn(20, 640).astype("float32")
    data = quantize(convert_float(model), signature_samples(x, ["x"]), Recipe())
    assert not has_external_buffers(data) and len(data) > 327_680
    assert measure_arena(data).bytes < 16_384, "weights stay in flash, not in the arena"


def test_io_other_than_int8_keeps_the_converter_path(int8_io):
    import dataclasses

    from edgepipe.config.schema import IODtype
    from edgepipe.quantize.recipes import io_refusal

    assert io_refusal(int8_io) is None
    uint8 = dataclasses.replace(int8_io, input_dtype=IODtype.UINT8, output_dtype=IODtype.UINT8)
    assert io_refusal(uint8) == "ai-edge-quantizer gives int8 input/output only; the build asks for uint8/uint8"


def test_calibration_takes_min_and_max_as_the_converter_does(fc_model, fc_samples, int8_io):
    """ai-edge-quantizer's own calibrate() averages ranges (clipping them); edgepipe's gives the converter's."""
    import numpy as np

    from edgepipe.keras_io.convert import convert
    from edgepipe.quantize.recipes import Recipe, convert_with_recipe

    ours = parse_tflite(convert_with_recipe(fc_model, fc_samples, int8_io, Recipe()))
    theirs = parse_tflite(convert(fc_model, fc_samples, int8_io))
    scales = lambda m: [m.tensors[op.outputs[0]].scale[0] for op in m.operators]  # noqa: E731
    assert [op.op for op in ours.operators] == [op.op for op in theirs.operators]
    np.testing.assert_allclose(scales(ours), scales(theirs), rtol=1e-6)
    np.testing.assert_allclose(ours.input_tensors[0].scale, theirs.input_tensors[0].scale, rtol=1e-6)
