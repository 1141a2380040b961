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
    assert [e.layer for e in attr.layers] == ["image", "conv", "pool", "flat", "classifier"]
    assert attr.unmatched_layers == []
    assert np.isfinite(attr.worst(1)[0].local_sqnr_db)


# ----------------------------------------------------------------- layers that fold, split or hide in the int8 graph
#
# The expected tensor of each layer is found here from the interpreter's own op
# list (op type and what it reads), never from edgepipe's mapping, and each
# figure is recomputed here: the float layer output from a Keras sub-model, the
# int8 tensor from a LiteRT reference-kernel run that keeps every tensor.

N_CLASSES = 5


def _trained_looking(model, seed: int):
    """BatchNorms with non-trivial statistics, as after training (identity ones fold away nameless)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = (w.shape for w in layer.get_weights())
            layer.set_weights([rng.uniform(0.5, 1.5, gamma), rng.normal(0, 0.2, beta),
                               rng.normal(0, 0.1, mean), rng.uniform(0.5, 2.0, var)])
    return model


def _mini_xception(keras):
    """Arriaga et al.'s face-emotion net in miniature: the second separable conv keeps 16 channels, so
    its depthwise half has exactly the separable layer's output shape."""
    L = keras.layers
    keras.utils.set_random_seed(1)
    inp = keras.Input((16, 16, 1), name="img")
    h = L.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inp)
    h = L.Activation("relu", name="stem_relu")(L.BatchNormalization(name="stem_bn")(h))
    res = L.BatchNormalization(name="res_bn")(L.Conv2D(16, 1, strides=2, use_bias=False, name="res")(h))
    s = L.SeparableConv2D(16, 3, padding="same", use_bias=False, name="sep1")(h)
    s = L.Activation("relu", name="sep1_relu")(L.BatchNormalization(name="sep1_bn")(s))
    s = L.BatchNormalization(name="sep2_bn")(L.SeparableConv2D(16, 3, padding="same", use_bias=False, name="sep2")(s))
    s = L.MaxPooling2D(3, strides=2, padding="same", name="pool")(s)
    h = L.Conv2D(N_CLASSES, 3, padding="same", name="head")(L.Add(name="add")([s, res]))
    out = L.Activation("softmax", name="pred")(L.GlobalAveragePooling2D(name="gap")(h))
    return _trained_looking(keras.Model(inp, out, name="mini_xception"), 2)


def _dense_relu_net(keras):
    """Conv+BN+ReLU layer, a Dropout, a Dense(relu) followed by a ReLU layer the converter drops, Softmax layer."""
    L = keras.layers
    keras.utils.set_random_seed(3)
    inp = keras.Input((8, 8, 3), name="img")
    h = L.ReLU(name="relu")(L.BatchNormalization(name="bn")(L.Conv2D(8, 3, name="conv")(inp)))
    h = L.Flatten(name="flat")(L.Dropout(0.3, name="drop")(L.MaxPooling2D(name="pool")(h)))
    h = L.ReLU(name="hidden_relu")(L.Dense(16, activation="relu", name="hidden")(h))
    out = L.Softmax(name="prob")(L.Dense(4, name="out")(h))
    return _trained_looking(keras.Model(inp, out, name="dense_relu"), 4)


def _conv1d_net(keras):
    """Conv1D layers run as 2-D ops between reshapes; a DepthwiseConv1D+BN+ReLU ends in a squeeze named after it."""
    L = keras.layers
    keras.utils.set_random_seed(5)
    inp = keras.Input((32, 3), name="sig")
    h = L.ReLU(name="r1")(L.BatchNormalization(name="bn1")(L.Conv1D(8, 3, name="c1")(inp)))
    h = L.MaxPooling1D(name="mp")(L.Conv1D(8, 3, activation="relu", name="c2")(h))
    h = L.DepthwiseConv1D(3, name="dw")(L.SeparableConv1D(8, 3, name="sep")(h))
    h = L.GlobalAveragePooling1D(name="gap")(L.ReLU(name="r2")(L.BatchNormalization(name="bn2")(h)))
    return _trained_looking(keras.Model(inp, L.Dense(4, name="out")(h), name="conv1d_net"), 6)


def _build(keras, settings, make):
    from edgepipe.keras_io.convert import convert

    model = make(keras)
    x = np.random.default_rng(7).normal(size=(48, *model.inputs[0].shape[1:])).astype(np.float32)
    return model, convert(model, x[:32], settings), x[32:]


@pytest.fixture(scope="module")
def xception(keras_mod, int8_settings):
    return _build(keras_mod, int8_settings, _mini_xception)


@pytest.fixture(scope="module")
def dense_relu(keras_mod, int8_settings):
    return _build(keras_mod, int8_settings, _dense_relu_net)


@pytest.fixture(scope="module")
def conv1d(keras_mod, int8_settings):
    return _build(keras_mod, int8_settings, _conv1d_net)


class _LiteRT:
    """The int8 model as LiteRT runs it: its ops (type, inputs, outputs) and every tensor of a run on ``x``."""

    def __init__(self, tflite: bytes, x: np.ndarray):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        it = Interpreter(model_content=tflite, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                         experimental_preserve_all_tensors=True)
        it.allocate_tensors()
        self.ops = [(d["op_name"], list(d["inputs"]), list(d["outputs"])) for d in it._get_ops_details()]
        self.details = {d["index"]: d for d in it.get_tensor_details()}
        self.input = it.get_input_details()[0]["index"]
        wanted = [self.input, *(o for _, _, outs in self.ops for o in outs)]
        runs = [self._invoke(it, sample, wanted) for sample in x]
        self.values = {i: np.stack([run[i] for run in runs]) for i in wanted}

    def _invoke(self, it, sample: np.ndarray, wanted: list[int]) -> dict[int, np.ndarray]:
        scale, zero = self.details[self.input]["quantization"]
        v = sample[None] / scale
        q = np.sign(v) * np.floor(np.abs(v) + 0.5) + zero  # the QUANTIZE kernel's ties-away-from-zero
        it.set_tensor(self.input, np.clip(q, -128, 127).astype(np.int8))
        it.invoke()
        return {i: self._dequantized(i, it.get_tensor(i)[0]) for i in wanted}

    def _dequantized(self, i: int, v: np.ndarray) -> np.ndarray:
        scale, zero = self.details[i]["quantization"]
        return (v.astype(np.float32) - zero) * np.float32(scale) if v.dtype.kind == "i" else v

    def out(self, op_type: str, reads: int | None = None) -> int:
        """The output tensor of the one op of ``op_type`` (that reads tensor ``reads``)."""
        hits = [outs[0] for op, ins, outs in self.ops if op == op_type and (reads is None or reads in ins)]
        assert len(hits) == 1, f"expected one {op_type} reading {reads}, found {hits}"
        return hits[0]

    def producer(self, idx: int) -> tuple[str, list[int]]:
        return next((op, ins) for op, ins, outs in self.ops if idx in outs)

    def name(self, idx: int) -> str:
        return self.details[idx]["name"]


def _xception_expected(g: _LiteRT) -> dict:
    """Layer -> (its tensor, the layers that tensor computes in order, the tensors they read)."""
    stem = g.out("CONV_2D", reads=g.input)
    pw1 = g.out("CONV_2D", reads=g.out("DEPTHWISE_CONV_2D", reads=stem))
    pw2 = g.out("CONV_2D", reads=g.out("DEPTHWISE_CONV_2D", reads=pw1))
    res, pool, add = g.out("CONV_2D", reads=stem), g.out("MAX_POOL_2D", reads=pw2), g.out("ADD")
    head = g.out("CONV_2D", reads=add)
    gap = g.out("MEAN", reads=head)
    return {"stem_relu": (stem, ["stem", "stem_bn", "stem_relu"], [g.input]),
            "res_bn": (res, ["res", "res_bn"], [stem]),
            "sep1_relu": (pw1, ["sep1", "sep1_bn", "sep1_relu"], [stem]),
            "sep2_bn": (pw2, ["sep2", "sep2_bn"], [pw1]),
            "pool": (pool, ["pool"], [pw2]), "add": (add, ["add"], [pool, res]),
            "head": (head, ["head"], [add]), "gap": (gap, ["gap"], [head]),
            "pred": (g.out("SOFTMAX", reads=gap), ["pred"], [gap])}


def _dense_relu_expected(g: _LiteRT) -> dict:
    conv = g.out("CONV_2D", reads=g.input)
    pool = g.out("MAX_POOL_2D", reads=conv)
    flat = g.out("RESHAPE", reads=pool)
    hidden = g.out("FULLY_CONNECTED", reads=flat)
    out = g.out("FULLY_CONNECTED", reads=hidden)
    return {"relu": (conv, ["conv", "bn", "relu"], [g.input]), "drop": (pool, ["pool", "drop"], [conv]),
            "flat": (flat, ["flat"], [pool]), "hidden_relu": (hidden, ["hidden", "hidden_relu"], [flat]),
            "out": (out, ["out"], [hidden]), "prob": (g.out("SOFTMAX", reads=out), ["prob"], [out])}


def _conv1d_expected(g: _LiteRT) -> dict:
    c1 = g.out("CONV_2D", reads=g.out("RESHAPE", reads=g.input))
    c2 = g.out("CONV_2D", reads=c1)
    mp = g.out("MAX_POOL_2D", reads=c2)
    sep = g.out("CONV_2D", reads=g.out("DEPTHWISE_CONV_2D", reads=mp))
    squeeze = g.out("RESHAPE", reads=g.out("DEPTHWISE_CONV_2D", reads=sep))
    gap = g.out("MEAN", reads=squeeze)
    return {"r1": (c1, ["c1", "bn1", "r1"], [g.input]), "c2": (c2, ["c2"], [c1]), "mp": (mp, ["mp"], [c2]),
            "sep": (sep, ["sep"], [mp]), "r2": (squeeze, ["dw", "bn2", "r2"], [sep]),
            "gap": (gap, ["gap"], [squeeze]), "out": (g.out("FULLY_CONNECTED", reads=gap), ["out"], [gap])}


NETS = {"xception": _xception_expected, "dense_relu": _dense_relu_expected, "conv1d": _conv1d_expected}


def _mapping_matches(net, request):
    """(attribution, LiteRT view, expected table), after checking every layer's tensor and fused layers."""
    model, tfl_bytes, x = request.getfixturevalue(net)
    g = _LiteRT(tfl_bytes, x)
    want = NETS[net](g)
    attr = attribute(model, tfl_bytes, x)
    got = {e.layer: (e.tensor, e.fused) for e in attr.layers if e.kind != "InputLayer"}
    assert got == {layer: (g.name(t), tuple(chain[:-1])) for layer, (t, chain, _) in want.items()}
    assert attr.unmatched_layers == [] and not attr.note
    return attr, g, want


@pytest.mark.parametrize("net", ["dense_relu", "conv1d"])
def test_fused_activations_belong_to_the_last_layer_the_tensor_equals(net, request):
    """dense_relu: Conv+BN+ReLU layer -> CONV_2D as "relu"; the dropped ReLU after Dense(relu) owns the
    FULLY_CONNECTED; the Dropout owns MAX_POOL_2D. conv1d: the squeeze after DepthwiseConv1D+BN+ReLU
    belongs to the ReLU, and the SeparableConv1D to its pointwise CONV_2D."""
    _mapping_matches(net, request)


def test_mini_xception_layers_map_to_the_ops_that_compute_them(request):
    attr, g, want = _mapping_matches("xception", request)
    op = {e.layer: g.producer(want[e.layer][0]) for e in attr.layers if e.kind != "InputLayer"}
    for layer in ("sep1_relu", "sep2_bn"):  # sep2's depthwise output has its exact shape: the old trap
        assert op[layer][0] == "CONV_2D" and g.producer(op[layer][1][0])[0] == "DEPTHWISE_CONV_2D"
    assert op["gap"][0] == "MEAN" and op["pred"][0] == "SOFTMAX"
    assert all(kind != "DEPTHWISE_CONV_2D" for kind, _ in op.values())
    assert attr.at_fault() == [], "the old mapping read sep2's depthwise half (-5.6 dB), gap's softmax (-9.3 dB)"


def _channel_sqnr(ref: np.ndarray, test: np.ndarray) -> float:
    """Per-channel (last axis) noise/signal averaged over channels with signal, in dB."""
    ref = np.asarray(ref, np.float64).reshape(-1, ref.shape[-1])
    noise = np.sum((ref - np.asarray(test, np.float64).reshape(ref.shape)) ** 2, axis=0)
    signal = np.sum(ref**2, axis=0)
    nsr = np.mean(noise[signal > 0] / signal[signal > 0])
    return float("inf") if nsr == 0 else float(-10 * np.log10(nsr))


def _figures_here(keras, model, g: _LiteRT, x: np.ndarray, layer: str, tensor: int, chain, reads) -> tuple:
    """(cumulative, local) SQNR of ``tensor``: against the float model, and against ``chain`` run on the
    int8 tensors ``reads`` (what the int8 model fed it)."""
    ref = np.asarray(keras.Model(model.inputs[0], model.get_layer(layer).output)(x))
    got = g.values[tensor].reshape(ref.shape)
    first = model.get_layer(chain[0])
    shapes = [t.shape for t in (first.input if isinstance(first.input, list) else [first.input])]
    args = [g.values[t].reshape((len(x), *s[1:])).astype(np.float32) for t, s in zip(reads, shapes)]
    v = first(args if len(args) > 1 else args[0])
    for name in chain[1:]:
        v = model.get_layer(name)(v)
    return _channel_sqnr(ref, got), _channel_sqnr(np.asarray(v), got)


@pytest.mark.parametrize("net", sorted(NETS))
def test_each_layers_sqnr_matches_an_independent_computation(net, request, keras_mod):
    attr, g, want = _mapping_matches(net, request)
    model, _, x = request.getfixturevalue(net)
    inp = attr.layers[0]
    assert inp.kind == "InputLayer" and np.isclose(inp.sqnr_db, _channel_sqnr(x, g.values[g.input]), atol=0.1)
    for e in attr.layers[1:]:
        cumulative, local = _figures_here(keras_mod, model, g, x, e.layer, *want[e.layer])
        assert np.isclose(e.sqnr_db, cumulative, atol=0.1), (e.layer, e.sqnr_db, cumulative)
        assert np.isclose(e.local_sqnr_db, local, atol=0.1), (e.layer, e.local_sqnr_db, local)
