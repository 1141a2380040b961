"""Bias correction removes the mean shift int8 weight rounding causes, layer by layer."""

from __future__ import annotations

import numpy as np

from edgepipe.quantize.bias_correction import correct_biases, fake_quant


def _quantized_weights(model):
    """The model with every Dense kernel rounded to int8 per channel, as the converter will."""
    from edgepipe.quantize.equalize import copy_model

    q = copy_model(model)
    for layer in q.layers:
        if type(layer).__name__ == "Dense":
            layer.kernel.assign(fake_quant(layer.kernel.numpy(), 1))
    return q


def test_first_layer_mean_shift_removed(fc_model, fc_samples):
    corrected, layers = correct_biases(fc_model, fc_samples)
    assert layers == ["e1", "code", "d1", "recon"]

    def pre(m):  # the pre-activation mean of e1, x @ W + b, over the samples
        k, b = m.get_layer("e1").get_weights()
        return (fc_samples @ k + b).mean(0)
    float_mean, plain_q = pre(fc_model), pre(_quantized_weights(fc_model))
    fixed_q = pre(_quantized_weights(corrected))
    assert np.abs(plain_q - float_mean).max() > 1e-3, "rounding shifts the mean"
    np.testing.assert_allclose(fixed_q, float_mean, atol=1e-5)


def test_layers_without_bias_or_bn_left_alone(keras_mod, fc_samples):
    keras, L = keras_mod, keras_mod.layers
    keras.utils.set_random_seed(0)
    inp = keras.Input((64,))
    model = keras.Model(inp, L.Dense(4, use_bias=False, name="nobias")(L.Dense(8, name="with_bias")(inp)))
    corrected, layers = correct_biases(model, fc_samples)
    assert layers == ["with_bias"]
    kernel = corrected.get_layer("nobias").kernel.numpy()
    np.testing.assert_array_equal(kernel, model.get_layer("nobias").kernel.numpy())
