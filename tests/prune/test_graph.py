"""What the dependency graph couples, freezes and refuses."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers as L
from prune_helpers import assert_matches_reference, conv_bn_relu, images, randomize_statistics

from edgepipe.errors import EdgepipeError
from edgepipe.prune import PruneSettings, prune_model
from edgepipe.prune.errors import RebuildError, UntraceableModelError

OPEN = PruneSettings(ratio=0.5, exclude=[])


@keras.saving.register_keras_serializable(package="edgepipe_tests")
class ChannelScale(keras.layers.Layer):
    """A custom layer with one weight per channel: the graph has no rule for it."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, x):
        return x * self.scale


class NeedsArgs(keras.layers.Layer):
    """A custom layer whose config cannot re-create it (required argument, no get_config)."""

    def __init__(self, units):
        super().__init__()
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), name="w")

    def call(self, x):
        return x @ self.w


def _net_with(middle) -> keras.Model:
    keras.utils.set_random_seed(11)
    inputs = keras.Input((8, 8, 3))
    x = conv_bn_relu(inputs, 8, "before")
    x = middle(x)
    x = conv_bn_relu(x, 8, "after")
    outputs = L.Dense(4, name="classifier")(L.GlobalAveragePooling2D()(x))
    return randomize_statistics(keras.Model(inputs, outputs))


def _widths(result) -> dict[str, int]:
    return {c.name: c.channels_out.after for c in result.layers}


@pytest.mark.parametrize(
    "middle, name",
    [
        (L.Lambda(lambda t: t * 2.0, name="double"), "double"),
        (ChannelScale(name="scale"), "scale"),
        (L.Activation("softmax", name="softmax"), "softmax"),
        (L.LayerNormalization(name="norm"), "norm"),
    ],
    ids=["lambda", "custom", "softmax", "layernorm"],
)
def test_unknown_layer_keeps_its_channels(middle, name):
    model = _net_with(middle)
    result = prune_model(model, OPEN)
    kept = {k.name: k.reason for k in result.kept_whole}
    assert name in kept and kept[name]
    assert _widths(result)["before"] == 8  # feeds the unknown layer: frozen
    assert _widths(result)["after"] == 4  # its own output is still prunable
    assert_matches_reference(model, result, images((8, 8, 3)))


def test_subclass_of_a_known_layer_is_not_trusted():
    class OddConv(L.Conv2D):
        pass

    result = prune_model(_net_with(OddConv(8, 1, name="odd")), OPEN)
    assert "odd" in {k.name for k in result.kept_whole}


def test_channel_mixing_activation_freezes_only_the_output():
    keras.utils.set_random_seed(12)
    inputs = keras.Input((8, 8, 3))
    x = conv_bn_relu(inputs, 8, "first")
    x = L.Conv2D(6, 1, activation="softmax", name="attn")(x)
    outputs = L.Dense(3, name="classifier")(L.GlobalAveragePooling2D()(x))
    model = randomize_statistics(keras.Model(inputs, outputs))
    result = prune_model(model, OPEN)
    assert _widths(result)["first"] == 4 and _widths(result)["attn"] == 6
    assert_matches_reference(model, result, images((8, 8, 3)))


def test_every_model_output_is_frozen():
    keras.utils.set_random_seed(13)
    inputs = keras.Input((8, 8, 3))
    features = conv_bn_relu(inputs, 8, "features")
    x = L.Conv2D(8, 3, name="conv")(features)
    logits = L.Dense(3, name="classifier")(L.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, [logits, features])
    result = prune_model(model, OPEN)
    assert _widths(result)["features"] == 8 and _widths(result)["conv"] == 4
    frozen = [g.frozen for g in result.groups if any(m.layer == "features" for m in g.members)]
    assert any("model output" in (f or "") for f in frozen)
    assert_matches_reference(model, result, images((8, 8, 3)))


def test_a_one_channel_gate_is_broadcast_and_the_features_prune():
    keras.utils.set_random_seed(14)
    inputs = keras.Input((8, 8, 3))
    x = conv_bn_relu(inputs, 8, "a")
    gate = L.Conv2D(1, 1, activation="sigmoid", name="gate")(x)
    x = L.Multiply(name="mul")([x, gate])
    outputs = L.Dense(3, name="classifier")(L.GlobalAveragePooling2D()(x))
    result = prune_model(keras.Model(inputs, outputs), OPEN)
    assert "mul" not in {k.name for k in result.kept_whole}
    assert _widths(result)["a"] == 4 and _widths(result)["gate"] == 1, "the gate is broadcast, never pruned"


def test_channels_first_conv_is_kept_whole():
    keras.utils.set_random_seed(15)
    inputs = keras.Input((3, 8, 8))
    x = L.Conv2D(8, 3, data_format="channels_first", name="cf")(inputs)
    outputs = L.Dense(3, name="classifier")(L.Flatten()(x))
    result = prune_model(keras.Model(inputs, outputs), OPEN)
    assert "channels_first" in {k.name: k.reason for k in result.kept_whole}["cf"]


def test_subclassed_model_is_refused_with_exit_code_2():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = L.Conv2D(4, 3)

        def call(self, x):
            return self.conv(x)

    net = Net()
    net(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(UntraceableModelError) as caught:
        prune_model(net, OPEN)
    assert isinstance(caught.value, EdgepipeError) and caught.value.exit_code == 2
    assert "subclassed model of class Net" in str(caught.value)


def test_nested_subclassed_model_is_kept_whole():
    class Inner(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = L.Conv2D(8, 1)

        def call(self, x):
            return self.conv(x)

    keras.utils.set_random_seed(16)
    inputs = keras.Input((8, 8, 3))
    x = Inner(name="inner")(conv_bn_relu(inputs, 8, "a"))
    outputs = L.Dense(3, name="classifier")(L.GlobalAveragePooling2D()(conv_bn_relu(x, 8, "b")))
    model = keras.Model(inputs, outputs)
    result = prune_model(model, OPEN)
    assert "subclassed" in {k.name: k.reason for k in result.kept_whole}["inner"]
    assert _widths(result)["a"] == 8 and _widths(result)["b"] == 4


def test_layer_that_cannot_be_recreated_raises_a_clear_error():
    layer = NeedsArgs(8)
    with pytest.raises(RebuildError, match="'needs_args'.*NeedsArgs.*get_config"):
        prune_model(_net_with(layer), OPEN)
