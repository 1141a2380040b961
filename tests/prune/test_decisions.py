"""How many channels are kept, which ones, and what is reported."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from keras import layers as L

from edgepipe.prune import PruneSettings, prune_model
from edgepipe.prune.channel import kept_count


@pytest.mark.parametrize(
    "units, ratio, multiple, kept",
    [
        (16, 0.5, 1, 8),
        (16, 0.5, 8, 8),
        (12, 0.5, 8, 8),  # 6 rounds up to 8
        (10, 0.7, 4, 4),  # 3 rounds up to 4
        (6, 0.5, 8, 6),  # never more than the original
        (3, 0.9, 1, 1),  # never 0
        (100, 0.07, 1, 93),  # no float drift (100 * 0.93 = 93.00000000000001)
        (8, 0.0, 1, 8),
    ],
)
def test_kept_count(units, ratio, multiple, kept):
    assert kept_count(units, ratio, multiple) == kept


def _widths(result) -> dict[str, int]:
    return {c.name: c.channels_out.after for c in result.layers}


def test_kept_widths_are_multiples_of_channel_multiple(residual_model):
    result = prune_model(residual_model, PruneSettings(ratio=0.3, exclude=[]), channel_multiple=4)
    for change in result.layers:
        if change.class_name in ("Conv2D", "BatchNormalization"):
            assert change.channels_out.after % 4 == 0


def test_default_exclude_is_first_conv_and_classifier(residual_model):
    result = prune_model(residual_model, PruneSettings(ratio=0.5))
    assert result.exclude == ("stem", "classifier")
    widths = _widths(result)
    # stem is coupled to res_b through the residual add, so both stay whole.
    assert widths["stem"] == widths["res_b"] == 8
    assert widths["res_a"] == 4 and widths["classifier"] == 5


def test_prune_first_leaves_only_the_output_layers_whole(residual_model):
    result = prune_model(residual_model, PruneSettings(ratio=0.5, prune_first=True))
    assert result.exclude == ("classifier",)
    widths = _widths(result)
    assert widths["stem"] == widths["res_b"] == 4 and widths["classifier"] == 5


def test_per_layer_ratio_overrides_the_global_one(residual_model):
    settings = PruneSettings(ratio=0.5, exclude=[], per_layer={"res_a": 0.75, "widen": 0.0})
    widths = _widths(prune_model(residual_model, settings))
    assert widths["res_a"] == 2 and widths["widen"] == 16 and widths["stem"] == 4


def test_per_layer_entry_without_own_channels_is_noted(residual_model):
    result = prune_model(residual_model, PruneSettings(per_layer={"classifier": 0.2}))
    assert any("'classifier'" in note for note in result.notes)


def test_input_model_is_not_modified(residual_model):
    before = [w.copy() for w in residual_model.get_weights()]
    prune_model(residual_model, PruneSettings(ratio=0.5, exclude=[]))
    for old, new in zip(before, residual_model.get_weights()):
        np.testing.assert_array_equal(old, new)


def _two_convs(first_filters: np.ndarray) -> keras.Model:
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(4, 1, use_bias=False, name="a")(inputs)
    x = L.BatchNormalization(name="bn")(x)
    x = L.Conv2D(3, 1, use_bias=False, name="b")(x)
    model = keras.Model(inputs, L.Dense(2, name="classifier")(L.Flatten()(x)))
    model.get_layer("a").kernel.assign(first_filters)
    model.get_layer("b").kernel.assign(np.full((1, 1, 4, 3), 0.1, "float32"))
    return model


def test_l1_keeps_the_filters_with_the_largest_group_norm():
    filters = np.zeros((1, 1, 2, 4), "float32")
    filters[..., :] = [0.1, 3.0, 0.2, 2.0]
    model = _two_convs(filters)
    model.get_layer("bn").gamma.assign(np.array([9.0, 0.1, 8.0, 0.1], "float32"))
    l1 = prune_model(model, PruneSettings(ratio=0.5, exclude=[], importance="l1"))
    bn = prune_model(model, PruneSettings(ratio=0.5, exclude=[], importance="bn"))
    assert l1.kept_indices["a"]["out"] == (1, 3)
    assert bn.kept_indices["a"]["out"] == (0, 2)


def test_bn_importance_falls_back_to_l1_without_batchnorm():
    model = _two_convs(np.ones((1, 1, 2, 4), "float32"))
    result = prune_model(model, PruneSettings(ratio=0.5, exclude=[], importance="bn"))
    used = {g.members[0].layer: g.importance for g in result.groups if not g.frozen}
    assert used == {"a": "bn", "b": "l1 (no BatchNormalization in group)"}


def test_report_is_json_and_counts_params_and_macs(residual_model):
    result = prune_model(residual_model, PruneSettings(ratio=0.5, exclude=[]))
    data = json.loads(json.dumps(result.to_dict()))
    rows = {row["name"]: row for row in data["layers"]}
    # res_a: 3x3 conv on a 12x12 map, 8 -> 4 inputs and outputs.
    assert rows["res_a"]["macs"] == {"before": 144 * 9 * 8 * 8, "after": 144 * 9 * 4 * 4}
    assert rows["res_a"]["params"] == {"before": 9 * 8 * 8 + 8, "after": 9 * 4 * 4 + 4}
    assert data["totals"]["params"]["after"] == result.model.count_params()
    assert 0 < data["totals"]["macs_ratio"] < 0.5
    assert data["groups"] and all("members" in g for g in data["groups"])
    assert data["settings"]["ratio"] == 0.5 and "model" not in data
