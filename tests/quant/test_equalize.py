"""Cross-layer equalization: the float model is unchanged, the pair's channel ranges become equal."""

from __future__ import annotations

import numpy as np

from edgepipe.quantize.equalize import equalize, find_pairs


def test_pairs_found_through_bn_and_relu_but_not_relu6(ds_model):
    pairs = {(p.first, p.second): p.between for p in find_pairs(ds_model)}
    assert pairs[("c1", "dw")] == ("c1_bn", "c1_relu")
    assert pairs[("dw", "pw")] == ("dw_bn", "dw_relu")
    assert ("pw", "sep") in pairs and ("sep", "sep") in pairs, "conv(relu) -> separable, and inside the separable"
    assert not any(second == "after_relu6" for _, second in pairs), "ReLU6 clips: not a link"


def test_float_outputs_unchanged_and_original_untouched(ds_model, ds_samples):
    before = [w.copy() for w in ds_model.get_weights()]
    eq, pairs = equalize(ds_model)
    assert len(pairs) == 4
    np.testing.assert_allclose(eq.predict(ds_samples, verbose=0), ds_model.predict(ds_samples, verbose=0),
                               atol=2e-6, rtol=1e-4)
    assert all(np.array_equal(a, b) for a, b in zip(before, ds_model.get_weights())), "works on a copy"


def test_depthwise_and_pointwise_ranges_equalized(ds_model):
    """Nagel's criterion: both layers' weight ranges per channel become equal (sqrt(r1 r2)), for the
    channels edgepipe scales (s_i >= 1)."""
    eq, _ = equalize(ds_model)
    dw = np.abs(eq.get_layer("dw").kernel.numpy()[..., 0]).reshape(-1, 8).max(0)
    pw = np.abs(eq.get_layer("pw").kernel.numpy()[0, 0]).max(1)
    before = np.abs(ds_model.get_layer("dw").kernel.numpy()[..., 0]).reshape(-1, 8).max(0)
    pw_before = np.abs(ds_model.get_layer("pw").kernel.numpy()[0, 0]).max(1)
    big = before > pw_before  # s_i >= 1: only channels wider in the first layer are shrunk to meet
    assert big.sum() >= 2 and (~big).sum() >= 2
    # the depthwise channel is also the input channel of the c1 -> dw pair: the iterations converge, not exact
    assert np.all(np.abs(np.log(dw[big] / pw[big])) < np.log(1.25)), "ranges within 25% of each other"
    assert np.abs(np.log(before / pw_before)).max() > np.log(20), "they were 20x apart or more"
    assert dw.max() / dw.min() < before.max() / before.min() / 3


def test_a_dead_channel_with_a_bias_is_never_grown(keras_mod):
    """s_i >= 1: a near-zero channel with a large bias would otherwise stretch the int8 range of its tensor."""
    keras, L = keras_mod, keras_mod.layers
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 2))
    first = L.Conv2D(4, 1, activation="relu", name="first")
    model = keras.Model(inp, L.Conv2D(3, 1, name="second")(first(inp)))
    k, b = first.get_weights()
    k[..., 0] *= 1e-4
    b[:] = [0.5, 0.1, 0.1, 0.1]
    first.set_weights([k, b])
    eq, pairs = equalize(model)
    assert [(p.first, p.second) for p in pairs] == [("first", "second")]
    new_bias = eq.get_layer("first").bias.numpy()
    assert np.all(np.abs(new_bias) <= np.abs(b) + 1e-7), "no channel's output grew"
    x = np.random.RandomState(0).rand(4, 6, 6, 2).astype("float32")
    np.testing.assert_allclose(eq.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
