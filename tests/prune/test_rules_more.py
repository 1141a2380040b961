"""Rules for layers real models have: Permute/transpose that keep channels last,
reshapes that keep channels separable, squeeze-and-excite with a broadcast gate,
and a one-channel gate that broadcasts over every channel.

Each case prunes (fewer parameters) and matches the reference of
prune_helpers.py: the original model with the pruned channels' input slices
zeroed, on random inputs.
"""

from __future__ import annotations

import keras
import pytest
from keras import layers as L
from prune_helpers import assert_matches_reference, conv_bn_relu, images, randomize_statistics

from edgepipe.prune import PruneSettings, prune_model

SETTINGS = PruneSettings(ratio=0.5, exclude=[])


def _features(inputs):
    x = conv_bn_relu(inputs, 8, "stem")
    return conv_bn_relu(x, 8, "feat")


def detector_head(permute: tuple | None) -> keras.Model:
    """Features -> (optional Permute) -> Flatten -> the model's largest Dense, as in two detectors."""
    keras.utils.set_random_seed(11)
    inputs = keras.Input((6, 6, 3))
    x = _features(inputs)
    if permute is not None:
        x = L.Permute(permute, name="perm")(x)
    x = L.Dense(24, activation="relu", name="big")(L.Flatten(name="flat")(x))
    return randomize_statistics(keras.Model(inputs, L.Dense(3, name="head")(x)))


def transposed() -> keras.Model:
    keras.utils.set_random_seed(12)
    inputs = keras.Input((6, 4, 3))
    x = keras.ops.transpose(_features(inputs), (0, 2, 1, 3))
    x = conv_bn_relu(x, 8, "after")
    return randomize_statistics(keras.Model(inputs, L.Dense(3, name="head")(L.GlobalAveragePooling2D()(x))))


def tokens() -> keras.Model:
    """(H, W, C) -> (H*W, C): every row is one position, channels stay on the last axis."""
    keras.utils.set_random_seed(13)
    inputs = keras.Input((6, 6, 3))
    x = L.Reshape((36, 8), name="tokens")(_features(inputs))
    x = L.Dense(8, activation="relu", name="mix")(x)
    return randomize_statistics(keras.Model(inputs, L.Dense(3, name="head")(L.GlobalAveragePooling1D()(x))))


def squeeze_excite(keepdims: bool) -> keras.Model:
    """GAP -> Dense -> Dense(sigmoid) -> Multiply with the (N, C) or (N, 1, 1, C) gate broadcast."""
    keras.utils.set_random_seed(14)
    inputs = keras.Input((6, 6, 3))
    x = _features(inputs)
    g = L.GlobalAveragePooling2D(keepdims=keepdims, name="squeeze")(x)
    g = L.Dense(4, activation="relu", name="se_reduce")(g)
    g = L.Dense(8, activation="sigmoid", name="se_expand")(g)
    x = conv_bn_relu(L.Multiply(name="excite")([x, g]), 8, "after")
    return randomize_statistics(keras.Model(inputs, L.Dense(3, name="head")(L.GlobalAveragePooling2D()(x))))


def spatial_gate() -> keras.Model:
    """A one-channel attention map multiplies every channel (x * gate broadcasts over C)."""
    keras.utils.set_random_seed(15)
    inputs = keras.Input((6, 6, 3))
    x = _features(inputs)
    gate = L.Conv2D(1, 3, padding="same", activation="sigmoid", name="gate")(x)
    x = conv_bn_relu(L.Multiply(name="attend")([x, gate]), 8, "after")
    return randomize_statistics(keras.Model(inputs, L.Dense(3, name="head")(L.GlobalAveragePooling2D()(x))))


CASES = {
    "permute_hw": lambda: detector_head((2, 1, 3)),
    "transpose_op": transposed,
    "reshape_tokens": tokens,
    "se_flat_gate": lambda: squeeze_excite(False),
    "se_keepdims_gate": lambda: squeeze_excite(True),
    "spatial_gate": spatial_gate,
}


@pytest.fixture(scope="session")
def pruned_cases():
    """Each case's model and its prune result, built once."""
    out = {}
    for name, build in CASES.items():
        model = build()
        out[name] = (model, prune_model(model, SETTINGS))
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_is_pruned_through_and_stays_exact(pruned_cases, case):
    model, result = pruned_cases[case]
    assert result.totals.params.after < result.totals.params.before
    assert result.kept_whole == (), [k.reason for k in result.kept_whole]
    assert result.model.get_layer("feat").filters == 4
    assert_matches_reference(model, result, images(model.input_shape[1:], n=8), rtol=1e-5)


def test_permute_prunes_the_dense_behind_it_like_the_model_without_it(pruned_cases):
    """The Permute used to freeze the largest Dense: now both models prune to the same size."""
    _, with_permute = pruned_cases["permute_hw"]
    without = prune_model(detector_head(None), SETTINGS)
    assert with_permute.totals.params.after == without.totals.params.after
    assert with_permute.model.get_layer("big").kernel.shape == (36 * 4, 12)


def test_permute_that_moves_channels_is_kept_whole_and_exact():
    model = detector_head((3, 1, 2))
    result = prune_model(model, SETTINGS)
    assert [k.name for k in result.kept_whole] == ["perm"]
    assert "channel axis" in result.kept_whole[0].reason
    assert result.model.get_layer("feat").filters == 8, "its input channels are frozen"
    assert_matches_reference(model, result, images(model.input_shape[1:]), rtol=1e-5)


def test_reshape_to_tokens_rewrites_the_target_shape(pruned_cases):
    _, result = pruned_cases["reshape_tokens"]
    assert result.model.get_layer("tokens").target_shape == (36, 4)
    assert result.model.get_layer("mix").kernel.shape == (4, 4)


@pytest.mark.parametrize("case", ["se_flat_gate", "se_keepdims_gate"])
def test_squeeze_excite_gate_follows_the_channels_it_scales(pruned_cases, case):
    _, result = pruned_cases[case]
    kept = result.kept_indices
    assert kept["se_expand"]["out"] == kept["feat"]["out"], "gate c scales channel c"
    assert result.model.get_layer("se_reduce").units == 2


def test_one_channel_gate_is_left_whole(pruned_cases):
    _, result = pruned_cases["spatial_gate"]
    assert result.model.get_layer("gate").filters == 1
    assert len(result.kept_indices["gate"]["in"]) == 4
