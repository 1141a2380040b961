"""The pruned model computes the original function with the pruned channels cut.

See prune_helpers.py for why zeroing the consumers' input slices is the
exact reference. Every case also checks that something was pruned, so a
no-op could not pass.
"""

from __future__ import annotations

import keras
import pytest
from keras import layers as L
from prune_archs import random_model
from prune_helpers import (
    assert_matches_reference,
    conv_bn_relu,
    images,
    randomize_statistics,
)

from edgepipe.prune import PruneSettings, prune_model


def prune_and_check(model, settings=None, multiple=1, x=None):
    settings = settings or PruneSettings(ratio=0.5)
    result = prune_model(model, settings, channel_multiple=multiple)
    assert result.totals.params.after < result.totals.params.before
    assert [l.name for l in result.model.layers] == [l.name for l in model.layers]
    assert_matches_reference(model, result, images(model.input_shape[1:]) if x is None else x)
    return result


def test_residual_add_prunes_both_branches_alike(residual_model):
    result = prune_and_check(residual_model, PruneSettings(ratio=0.5, exclude=[]))
    widths = {c.name: c.channels_out.after for c in result.layers}
    assert widths["stem"] == widths["res_b"] == widths["res_b_bn"] == 4
    assert widths["res_a"] == 4 and widths["widen"] == 8


def _depthwise_net(multiplier: int) -> keras.Model:
    inputs = keras.Input((10, 10, 3))
    x = conv_bn_relu(inputs, 8, "stem")
    x = conv_bn_relu(x, 8, "expand", kernel=1)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=multiplier, name="dw")(x)
    x = L.BatchNormalization(name="dw_bn")(x)
    x = L.ReLU(6.0, name="dw_relu")(x)
    x = L.Conv2D(8, 1, name="project")(x)
    x = L.GlobalAveragePooling2D()(x)
    return randomize_statistics(keras.Model(inputs, L.Dense(4, name="classifier")(x)))


@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_follows_its_producer(multiplier):
    keras.utils.set_random_seed(2)
    result = prune_and_check(_depthwise_net(multiplier))
    widths = {c.name: c.channels_out.after for c in result.layers}
    assert widths["expand"] == 4
    assert widths["dw"] == 4 * multiplier and widths["dw_bn"] == 4 * multiplier


def test_concat_maps_offsets_to_each_producer():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    x = conv_bn_relu(inputs, 6, "stem")
    a = L.Conv2D(8, 1, name="a")(x)
    b = L.Conv2D(4, 3, padding="same", name="b")(x)
    x = L.BatchNormalization(name="cat_bn")(L.Concatenate(name="cat")([a, b]))
    x = L.Conv2D(6, 3, padding="same", name="after")(L.ReLU()(x))
    outputs = L.Dense(3, name="classifier")(L.GlobalMaxPooling2D()(x))
    model = randomize_statistics(keras.Model(inputs, outputs))
    result = prune_and_check(model)
    kept = result.kept_indices
    assert len(kept["a"]["out"]) == 4 and len(kept["b"]["out"]) == 2
    # cat_bn keeps a's kept channels at offsets 0..7 and b's at offsets 8..11.
    assert kept["cat_bn"]["out"] == kept["a"]["out"] + tuple(8 + i for i in kept["b"]["out"])
    assert kept["after"]["in"] == kept["cat_bn"]["out"]


def test_flatten_removes_every_spatial_row_of_a_channel():
    keras.utils.set_random_seed(4)
    inputs = keras.Input((6, 6, 2))
    x = conv_bn_relu(inputs, 4, "stem")
    x = L.Conv2D(8, 3, strides=2, padding="same", name="conv")(x)  # 3x3x8
    x = L.Dense(5, activation="relu", name="hidden")(L.Flatten(name="flat")(x))
    model = randomize_statistics(keras.Model(inputs, L.Dense(3, name="classifier")(x)))
    result = prune_and_check(model)
    conv_kept = result.kept_indices["conv"]["out"]
    rows = tuple(sorted(i * 8 + c for i in range(9) for c in conv_kept))
    assert result.kept_indices["hidden"]["in"] == rows
    assert result.model.get_layer("hidden").kernel.shape == (9 * len(conv_kept), 3)


def test_reshape_after_dense_is_rewritten():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((16,))
    x = L.Dense(4 * 6, activation="relu", name="fc")(inputs)
    x = L.Reshape((4, 6), name="rows")(x)  # last axis mixes fc units: frozen
    x = L.Conv1D(8, 3, padding="same", name="conv")(x)
    x = L.Reshape((4 * 8,), name="flat")(x)  # per-channel rows: prunable
    model = keras.Model(inputs, L.Dense(3, name="classifier")(x))
    result = prune_and_check(model, PruneSettings(ratio=0.5, exclude=[]), x=images((16,)))
    assert "rows" in {k.name for k in result.kept_whole}
    assert result.model.get_layer("flat").target_shape == (16,)
    assert result.model.get_layer("fc").units == 24


@pytest.mark.parametrize("seed", range(12))
def test_random_image_architectures(seed):
    model = random_model(seed, rank=2)
    ratio = [0.25, 0.5, 0.7][seed % 3]
    importance = ["l1", "l2", "bn"][seed % 3]
    settings = PruneSettings(ratio=ratio, importance=importance, exclude=[])
    prune_and_check(model, settings, multiple=1 + seed % 2)


@pytest.mark.parametrize("seed", range(100, 106))
def test_random_conv1d_architectures(seed):
    prune_and_check(random_model(seed, rank=1), PruneSettings(ratio=0.5, exclude=[]))


def test_sequential_model_stays_sequential():
    keras.utils.set_random_seed(6)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            L.Conv2D(8, 3, name="c1"),
            L.BatchNormalization(name="bn1"),
            L.ReLU(),
            L.Conv2D(8, 3, name="c2"),
            L.Flatten(),
            L.Dense(4, name="classifier"),
        ],
        name="seq",
    )
    result = prune_and_check(randomize_statistics(model), PruneSettings(ratio=0.5, exclude=[]))
    assert isinstance(result.model, keras.Sequential)
    assert result.model.get_layer("c1").filters == 4


def test_nested_functional_model_is_traced_through():
    keras.utils.set_random_seed(7)
    block_in = keras.Input((8, 8, 8))
    y = conv_bn_relu(block_in, 8, "inner")
    block = keras.Model(block_in, L.Add(name="inner_add")([block_in, y]), name="block")
    inputs = keras.Input((8, 8, 3))
    x = block(conv_bn_relu(inputs, 8, "stem"))
    x = L.Conv2D(12, 3, name="outer")(x)
    outputs = L.Dense(3, name="classifier")(L.GlobalAveragePooling2D()(x))
    model = randomize_statistics(keras.Model(inputs, outputs))
    result = prune_and_check(model, PruneSettings(ratio=0.5, exclude=[]))
    assert result.model.get_layer("block").get_layer("inner").filters == 4
    assert {g.layer for grp in result.groups for g in grp.members} >= {"block/inner", "stem"}


def test_shared_layer_couples_its_inputs():
    keras.utils.set_random_seed(8)
    inputs = keras.Input((8, 8, 3))
    a = conv_bn_relu(inputs, 8, "a")
    b = conv_bn_relu(inputs, 8, "b")
    shared = L.Conv2D(6, 3, padding="same", name="shared")
    x = L.Concatenate()([shared(a), shared(b)])
    outputs = L.Dense(3, name="classifier")(L.GlobalAveragePooling2D()(x))
    result = prune_and_check(randomize_statistics(keras.Model(inputs, outputs)),
                             PruneSettings(ratio=0.5, exclude=[]))
    assert result.kept_indices["a"]["out"] == result.kept_indices["b"]["out"]


def test_nested_sequential_gets_narrower_input():
    keras.utils.set_random_seed(9)
    block = keras.Sequential(
        [keras.Input((6, 6, 8)), L.Conv2D(8, 3, padding="same", name="inner"), L.ReLU()],
        name="block",
    )
    inputs = keras.Input((6, 6, 3))
    x = block(L.Conv2D(8, 3, padding="same", name="stem")(inputs))
    outputs = L.Dense(3, name="classifier")(L.Flatten()(x))
    result = prune_and_check(keras.Model(inputs, outputs), PruneSettings(ratio=0.5, exclude=[]))
    assert result.model.get_layer("block").input_shape == (None, 6, 6, 4)
