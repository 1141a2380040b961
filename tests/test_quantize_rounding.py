"""Inputs are quantized bit-exactly as the runtimes' own QUANTIZE kernels do.

One tiny Keras model (input 64 -> Reshape "echo" to 8x8, and a Dense) is
converted with a float32 input, so its first op is QUANTIZE, and with an int8
input. The Reshape echoes the quantized input to an int8 output, so the
QUANTIZE result can be read from every runtime, XNNPACK's too (a delegate does
not preserve intermediate tensors). The inputs are exact ties (x / scale is
k + 1/2 in float32) and the floats one or two ulps either side (where dividing
by the scale and multiplying by its reciprocal part ways), plus 8-bit pixels
mapped to [-1, 1]. Calibration "pixels" gives the input scale 2/255;
"generic" gives a scale at which division and multiplication differ.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe.runtimes.quant import OPTIMIZED, REFERENCE, _round_half_away, quantize, rounding_for
from edgepipe.tflite.model import parse_tflite

RANGES = {"pixels": (-1.0, 1.0), "generic": (-0.77, 1.91)}
ARENA = 64 * 1024


@pytest.fixture(scope="module")
def models():
    """{range name: {"float32": bytes, "int8": bytes}}: the model converted per calibration range."""
    from edgepipe.keras_io import import_tensorflow

    import_tensorflow()
    import keras

    from edgepipe.config.schema import IODtype, Scheme
    from edgepipe.keras_io.convert import ConvertSettings, convert

    keras.utils.set_random_seed(0)
    inp = keras.Input((64,), name="x")
    model = keras.Model(inp, [keras.layers.Reshape((8, 8), name="echo")(inp), keras.layers.Dense(4, name="dense")(inp)])
    pixels = np.random.default_rng(0).integers(0, 256, (50, 64)).astype(np.float32) / np.float32(127.5) - 1
    out = {}
    for name, (lo, hi) in RANGES.items():
        rep = pixels.copy()
        rep[0, :2] = lo, hi
        out[name] = {io: convert(model, rep, ConvertSettings(Scheme.INT8, IODtype(io), IODtype.INT8, True, False))
                     for io in ("float32", "int8")}
    return out


def _qparams(model_bytes: bytes) -> tuple[int, float, int, int]:
    """(QUANTIZE output tensor, its scale, zero point, the echo output tensor) of the float-input model."""
    tfl = parse_tflite(model_bytes)
    assert tfl.operators[0].op == "QUANTIZE" and tfl.input_tensors[0].dtype == "float32"
    q = tfl.tensors[tfl.operators[0].outputs[0]]
    echo = next(t for t in tfl.output_tensors if t.shape == (1, 8, 8))
    assert (echo.scale, echo.zero_point) == (q.scale, q.zero_point), "the echo output is the quantized input"
    return q.index, q.scale[0], q.zero_point[0], echo.index


def _inputs(scale: float, zero_point: int) -> np.ndarray:
    """Ties k + 1/2 for every k in the int8 range, 1-2 ulps either side, 8-bit pixels in [-1, 1]; rows of 64."""
    k = np.arange(-128 - zero_point, 128 - zero_point)
    ties = ((k + 0.5) * np.float64(scale)).astype(np.float32)
    up1, dn1 = np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))
    up2, dn2 = np.nextafter(up1, np.float32(np.inf)), np.nextafter(dn1, np.float32(-np.inf))
    pixels = (np.arange(256) / 127.5 - 1).astype(np.float32)
    x = np.concatenate([ties, up1, dn1, up2, dn2, pixels])
    return np.concatenate([x, np.zeros(-len(x) % 64, np.float32)]).reshape(-1, 64)


def _litert(model_bytes: bytes, kernels: str, rows: np.ndarray, tensors: list[int], preserve: bool = False):
    """Tensors ``tensors`` after each row (one invoke per row), stacked, and the interpreter's op list."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = {"reference": OpResolverType.BUILTIN_REF, "xnnpack": OpResolverType.AUTO}[kernels]
    it = Interpreter(model_content=model_bytes, experimental_op_resolver_type=resolver,
                     experimental_preserve_all_tensors=preserve)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    got = {i: [] for i in tensors}
    for row in rows:
        it.set_tensor(inp["index"], row[None].astype(inp["dtype"]))
        it.invoke()
        for i in tensors:
            got[i].append(it.get_tensor(i).reshape(-1).copy())
    return {i: np.concatenate(v) for i, v in got.items()}, it._get_ops_details()


def _tflm(model_bytes: bytes, rows: np.ndarray) -> dict[int, np.ndarray]:
    """Every output of a TFLM run (in a child process: TFLM can abort), keyed by tensor index."""
    from edgepipe.runtimes.tflm import run_isolated

    outs = run_isolated(model_bytes, rows, arena_size=ARENA)
    return {t: o.reshape(-1) for t, o in zip(parse_tflite(model_bytes).outputs, outs)}


@pytest.mark.parametrize("name", RANGES)
def test_the_inputs_are_mostly_ties_on_which_the_kernels_disagree(models, name):
    _, scale, zp, _ = _qparams(models[name]["float32"])
    x = _inputs(scale, zp).reshape(-1)
    d = x / np.float32(scale)
    ref, opt = quantize(x, "int8", scale, zp, REFERENCE), quantize(x, "int8", scale, zp, OPTIMIZED)
    old = np.clip(np.round(d) + zp, -128, 127)  # edgepipe's former rounding
    assert np.count_nonzero(d - np.floor(d) == 0.5) >= 250
    assert np.count_nonzero(ref != opt) >= 120 and np.count_nonzero(old != ref) >= 120


def test_half_of_the_8_bit_pixels_mapped_to_minus_one_one_are_ties(models):
    _, scale, zp, _ = _qparams(models["pixels"]["float32"])
    assert (np.float32(scale), zp) == (np.float32(2 / 255), -1)
    d = (np.arange(256) / 127.5 - 1).astype(np.float32) / np.float32(scale)
    assert np.count_nonzero(d - np.floor(d) == 0.5) >= 120


def test_at_a_generic_scale_division_and_reciprocal_multiplication_differ(models):
    """So the kernel tests below also tell x / scale from x * (1 / scale)."""
    _, scale, zp, _ = _qparams(models["generic"]["float32"])
    x = _inputs(scale, zp).reshape(-1)
    s = np.float32(scale)
    even_div = np.clip(np.rint(x / s) + zp, -128, 127)
    away_mul = np.clip(_round_half_away(x * (np.float32(1) / s)) + zp, -128, 127)
    assert np.count_nonzero(even_div != quantize(x, "int8", scale, zp, OPTIMIZED)) >= 60
    assert np.count_nonzero(away_mul != quantize(x, "int8", scale, zp, REFERENCE)) >= 60


@pytest.mark.parametrize("name", RANGES)
def test_reference_kernels_round_halves_away_from_zero(models, name):
    model = models[name]["float32"]
    qt, scale, zp, echo = _qparams(model)
    rows = _inputs(scale, zp)
    got, _ = _litert(model, "reference", rows, [qt, echo], preserve=True)
    want = quantize(rows, "int8", scale, zp, rounding_for("litert-reference")).reshape(-1)
    np.testing.assert_array_equal(got[qt], want)
    np.testing.assert_array_equal(got[echo], want)


@pytest.mark.parametrize("name", RANGES)
def test_xnnpack_multiplies_by_the_reciprocal_and_rounds_halves_to_even(models, name):
    model = models[name]["float32"]
    _, scale, zp, echo = _qparams(model)
    rows = _inputs(scale, zp)
    got, ops = _litert(model, "xnnpack", rows, [echo])
    first = parse_tflite(model).inputs[0]
    assert any(o["op_name"] == "DELEGATE" and echo in o["outputs"] and first in o["inputs"] for o in ops), \
        "XNNPACK ran the QUANTIZE"
    np.testing.assert_array_equal(got[echo], quantize(rows, "int8", scale, zp, rounding_for("litert-xnnpack"))
                                  .reshape(-1))


@pytest.mark.parametrize("name", RANGES)
def test_tflite_micro_rounds_halves_away_from_zero(models, name):
    model = models[name]["float32"]
    _, scale, zp, echo = _qparams(model)
    rows = _inputs(scale, zp)
    got = _tflm(model, rows)
    np.testing.assert_array_equal(got[echo], quantize(rows, "int8", scale, zp, rounding_for("tflm")).reshape(-1))


@pytest.mark.parametrize("runtime", ["litert-reference", "litert-xnnpack", "tflm"])
@pytest.mark.parametrize("name", RANGES)
def test_int8_input_fed_by_quantize_runs_as_the_float_input_model(models, name, runtime):
    """Every output of the int8-input model on ``quantize``'d inputs equals the float-input model's on floats."""
    f_model, i_model = models[name]["float32"], models[name]["int8"]
    _, scale, zp, _ = _qparams(f_model)
    t = parse_tflite(i_model).input_tensors[0]
    assert t.dtype == "int8" and (t.scale[0], t.zero_point[0]) == (scale, zp), "same calibration"
    rows = _inputs(scale, zp)
    q = quantize(rows, "int8", scale, zp, rounding_for(runtime))
    if runtime == "tflm":
        want, got = _tflm(f_model, rows), _tflm(i_model, q)
    else:
        kernels = runtime.removeprefix("litert-")
        want, _ = _litert(f_model, kernels, rows, list(parse_tflite(f_model).outputs))
        got, _ = _litert(i_model, kernels, q, list(parse_tflite(i_model).outputs))
    for (w, g) in zip(want.values(), got.values()):
        np.testing.assert_array_equal(g, w)
    assert len(want) == len(got) == 2
