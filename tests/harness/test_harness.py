"""The harness: streaming gives the in-memory figures, metrics are what they claim."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgepipe.data.sources import SourceSpec, load_dataset
from edgepipe.data.validate import apply_preprocess
from edgepipe.runtimes.base import REFERENCE, XNNPACK, make_runner
from edgepipe.tflite.model import parse_tflite
from edgepipe.harness import metrics
from edgepipe.harness.harness import EvalData, FloatOutputs, evaluate


def _close(a, b):
    """Equal, floats up to float32 noise: the float model's outputs vary in the last bits with batch size."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == b or math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-9)
    return a == b


@pytest.fixture(scope="module")
def tiny(keras_mod, tiny_model_path, tiny_tflite):
    return keras_mod.models.load_model(tiny_model_path), tiny_tflite


def _run(model, tfl_bytes, data, reference=True):
    tfl = parse_tflite(tfl_bytes)
    return evaluate(data, FloatOutputs(model), make_runner(XNNPACK, tfl_bytes, 2), tfl,
                    reference=make_runner(REFERENCE, tfl_bytes) if reference else None, reference_samples=100)


def test_streaming_a_memory_mapped_npy_gives_the_in_memory_figures(tiny, digits, tmp_path):
    model, tfl_bytes = tiny
    _, _, x_ev, y_ev = digits
    raw = np.round(x_ev * 16).astype(np.uint8)  # as stored on disk: 0..16, scaled by preprocessing
    np.save(tmp_path / "x.npy", raw)
    np.save(tmp_path / "y.npy", y_ev)
    ds = load_dataset(SourceSpec(path=tmp_path / "x.npy", y_path=tmp_path / "y.npy"), need_labels=True)
    assert isinstance(ds.x, np.memmap)
    streamed = EvalData.from_dataset(ds, (1, 8, 8, 1), preprocess=(1 / 16, 0.0, 1.0), n_classes=10, chunk_size=50)
    in_memory = EvalData(apply_preprocess(raw.astype(np.float32), 1 / 16, 0.0, 1.0), y_ev, n_classes=10,
                         chunk_size=10_000)
    a, b = _run(model, tfl_bytes, streamed), _run(model, tfl_bytes, in_memory)
    assert _close(a, b), (a, b)
    for key in ("quantized", "confusion_matrix", "agreement", "cross_check"):  # from integer outputs: exact
        assert a[key] == b[key]
    assert a["samples"] == len(y_ev) and a["quantized"]["top1"] > 85
    assert a["cross_check"]["samples"] == 100, "the reference runs on an evenly spread subset"
    assert sum(map(sum, a["confusion_matrix"])) == len(y_ev)


def test_an_image_folder_is_read_lazily_and_gives_the_same_figures(tiny, digits, tmp_path):
    from PIL import Image

    model, tfl_bytes = tiny
    _, _, x_ev, y_ev = digits
    pixels = (x_ev[:60, :, :, 0] * 255).astype(np.uint8)
    for i in range(60):
        (tmp_path / "img" / str(y_ev[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[i]).save(tmp_path / "img" / str(y_ev[i]) / f"{i:03d}.png")
    ds = load_dataset(SourceSpec(path=tmp_path / "img"), need_labels=True, lazy=True)
    assert type(ds.x).__name__ == "LazyImages" and ds.x.shape == (60, 8, 8, 1)
    eager = load_dataset(SourceSpec(path=tmp_path / "img"), need_labels=True)
    lazy = EvalData.from_dataset(ds, (1, 8, 8, 1), preprocess=(1 / 255, 0.0, 1.0), n_classes=10, chunk_size=16)
    whole = EvalData(apply_preprocess(eager.x.astype(np.float32), 1 / 255, 0.0, 1.0), eager.y, n_classes=10)
    assert _close(_run(model, tfl_bytes, lazy, False), _run(model, tfl_bytes, whole, False))


def test_streaming_checks_each_chunk_as_the_loader_does(tiny, tmp_path):
    from edgepipe.errors import InputError

    model, tfl_bytes = tiny
    bad = np.zeros((30, 8, 8, 1), np.float32)
    bad[17, 0, 0, 0] = np.nan
    data = EvalData(bad, np.zeros(30, int), where="bad.npy", input_shape=(1, 8, 8, 1), n_classes=10, chunk_size=10)
    with pytest.raises(InputError, match="NaN or Inf"):
        _run(model, tfl_bytes, data, False)


def test_metrics_accumulate_chunk_by_chunk_to_the_one_call_figures():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(100, 10))
    test = ref + rng.normal(scale=0.1, size=ref.shape)
    y = rng.integers(0, 10, 100)
    chunked, agree, cls = metrics.ErrorStats(), metrics.AgreementStats(), metrics.ClassStats(3, 10)
    for s in range(0, 100, 7):
        chunked.update(ref[s:s + 7], test[s:s + 7])
        agree.update(ref[s:s + 7], test[s:s + 7])
        cls.update(y[s:s + 7], test[s:s + 7])
    assert _close(chunked.result(), metrics.output_error(ref, test))
    assert agree.result() == metrics.agreement(ref, test)
    assert cls.result() == metrics.classification(y, test, k=3)
    assert cls.matrix.tolist() == metrics.confusion_matrix(y, test, 10)


def test_error_figures_mean_what_they_say():
    ref = np.array([[3.0, 4.0], [1.0, 0.0]])
    assert metrics.output_error(ref, ref)["sqnr_db"] == float("inf")
    half = metrics.output_error(ref, ref * 0.5)
    assert math.isclose(half["relative_l2"], 0.5) and math.isclose(half["sqnr_db"], 20 * math.log10(2))
    assert math.isclose(half["cosine_min"], 1.0) and math.isclose(half["mae"], (1.5 + 2.0 + 0.5) / 4)
    flipped = metrics.output_error(ref, -ref)
    assert math.isclose(flipped["cosine_mean"], -1.0)
    reg = metrics.regression(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert math.isclose(reg["rmse"], math.sqrt(4 / 3)) and math.isclose(reg["mae"], 2 / 3)
    lsb = metrics.LsbStats()
    lsb.update(np.array([[1, 2], [3, 4]], np.int8), np.array([[1, 3], [3, 1]], np.int8), np.array([10, 11]))
    r = lsb.result()
    assert r["max_lsb"] == 3 and r["samples_differing"] == 2 and r["histogram"] == {"1": 1, "3": 1}
    assert r["worst_samples"] == [11, 10]
    # one loud channel hides a drowned one in plain SQNR, not in the channel average
    loud = np.stack([np.full(50, 1000.0), np.linspace(0.1, 1, 50)], axis=1)
    drowned = loud.copy()
    drowned[:, 1] = 0
    assert metrics.output_error(loud, drowned)["sqnr_db"] > 50 > 5 > metrics.channel_sqnr_db(loud, drowned)


def test_regression_outputs_get_rmse_mae_relative_l2_cosine_sqnr(keras_mod, digits, int8_settings):
    from edgepipe.keras_io.convert import convert

    keras = keras_mod
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.Flatten()(inp)))
    model.compile("adam", "mse")
    x_tr, y_tr, x_ev, y_ev = digits
    model.fit(x_tr, y_tr.astype(np.float32), epochs=5, verbose=0)
    tfl_bytes = convert(model, x_tr[:100], int8_settings)
    data = EvalData(x_ev, y_ev.astype(np.float32), task="regression", chunk_size=100)
    acc = evaluate(data, FloatOutputs(model), make_runner(XNNPACK, tfl_bytes), parse_tflite(tfl_bytes))
    for level in ("float", "quantized"):
        assert {"rmse", "mae", "relative_l2", "cosine_mean", "sqnr_db"} <= set(acc[level])
    assert "agreement" not in acc and acc["output_error"]["sqnr_db"] > 20
    assert acc["quantized"]["rmse"] < 2 * acc["float"]["rmse"]


def test_the_float_model_runs_once_per_build(tiny, digits):
    from edgepipe.harness.harness import float_outputs

    model, _ = tiny
    x = digits[2]
    first = float_outputs(model, EvalData(x, digits[3]))
    assert float_outputs(model, EvalData(x, digits[3])) is first, "same model, same eval array: reused"
    assert float_outputs(model, EvalData(x.copy(), digits[3])) is not first
