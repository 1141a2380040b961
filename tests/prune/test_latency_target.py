"""prune.target latency: priced by the target's per-kernel latency model, not by MACs; BatchNormalization
re-calibrated in sensitivity trials as the build does."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from keras import layers as L

from edgepipe.config.targets import TargetRegistry
from edgepipe.prune import PruneSettings, prune_model
from edgepipe.prune.allocate import choose, latency_model
from edgepipe.prune.channel import prune_space
from edgepipe.prune.cost import CostModel
from edgepipe.prune.sensitivity import GroupSensitivity, Point, measure

MCU = "nucleo-l4r5zi"  # cmsis-nn-dsp on a Cortex-M4: a 3-channel first layer costs ~2x a 1x1 conv per MAC


@pytest.fixture(scope="session")
def mcu():
    return TargetRegistry().get(MCU).profile


@pytest.fixture(scope="session")
def stem_heavy():
    """A 3-channel 3x3 stem and a depthwise at 32x32 (expensive per MAC on the device), then two cheap
    1x1 convs at 8x8. Nothing excluded but what the outputs freeze."""
    keras.utils.set_random_seed(7)
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(16, 3, padding="same", name="stem")(inputs)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu", name="stem_dw")(x)
    x = L.MaxPooling2D(4)(x)
    x = L.Conv2D(64, 1, activation="relu", name="mid")(x)
    x = L.Conv2D(64, 1, activation="relu", name="late")(x)
    model = keras.Model(inputs, L.Dense(10, name="head")(L.GlobalAveragePooling2D()(x)))
    return model, prune_space(model, PruneSettings(exclude=[]), 4)


def _owner_ratio(allocation, owner: str) -> float:
    return next(g.ratio for g in allocation.groups if g.owner == owner)


def _linear(space, weights: dict[str, float]) -> list[GroupSensitivity]:
    """Damage proportional to the fraction removed, ``weights[owner]`` at 100 %: only cost decides the rest."""
    from edgepipe.prune.allocate import _owner

    found = []
    for index in space.prunable:
        w = weights[_owner(space.blocks[index])]
        found.append(GroupSensitivity(index, tuple(Point(r, w * r) for r in (0.25, 0.5, 0.75))))
    return found


def test_latency_target_prunes_the_stem_more_than_a_mac_target(stem_heavy, mcu):
    """Stem damage is 3x mid's per fraction removed: per MAC saved that is too much (the MAC target spares
    the stem), per device second saved it is not (the stem's MACs cost ~2x more cycles each)."""
    model, space = stem_heavy
    sens = _linear(space, {"stem": 3.0, "mid": 1.0, "late": 1.0})
    by_macs = choose(space, "macs", 0.6, sens, "given")
    by_time = choose(space, "latency", 0.6, sens, "given", latency=latency_model(model, "latency", mcu))
    assert _owner_ratio(by_time, "stem") > _owner_ratio(by_macs, "stem"), (by_time.groups, by_macs.groups)
    assert MCU in by_time.counted_as and "cmsis-nn-dsp" in by_time.counted_as
    assert by_macs.counted_as == "MACs" and not any("estimated by MACs" in n for n in by_time.notes)
    assert by_time.reached <= 0.6
    stem = next(g for g in by_time.groups if g.owner == "stem")
    assert stem.seconds_removed > 0 and stem.macs_removed > 0


def test_per_kernel_cost_is_not_proportional_to_macs(stem_heavy, mcu):
    """Halving the stem and halving mid save MACs and seconds in different proportions."""
    model, space = stem_heavy
    costs = CostModel(space.graph, latency_model(model, "latency", mcu))
    full = space.full()
    saved = {}
    for owner in ("stem", "mid"):
        index = next(i for i in space.prunable if any(m.layer == owner and m.role == "out"
                                                      for m in space.blocks[i].members))
        kept = list(full)
        kept[index] = full[index] // 2
        saved[owner] = [getattr(costs, f)(space.keep_id(full)) - getattr(costs, f)(space.keep_id(kept))
                        for f in ("seconds", "macs")]
    per_mac = {k: s / m for k, (s, m) in saved.items()}
    assert per_mac["stem"] > 1.5 * per_mac["mid"], per_mac


@pytest.fixture(scope="session")
def latency_pruned(stem_heavy, mcu):
    model, _ = stem_heavy
    x = np.random.default_rng(0).uniform(size=(64, 32, 32, 3)).astype("float32")
    settings = PruneSettings.from_dict({"target": {"latency": 0.5}, "exclude": []})
    result = prune_model(model, settings, 4, data=x, profile=mcu)
    return model, result, x


def _int8(model, x) -> bytes:
    import tensorflow as tf

    fixed_in = keras.Input(batch_shape=(1, *model.input_shape[1:]))
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(fixed_in, model(fixed_in)))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s[None]] for s in x[:16])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def test_device_estimate_of_the_converted_pruned_model_meets_the_target(latency_pruned, mcu):
    """The Keras-level estimate the allocator used agrees with the build's estimate of the .tflite (3 %),
    and the converted pruned model's estimate is at most the requested half of the original's."""
    from edgepipe.estimate.latency import estimate_latency
    from edgepipe.tflite.model import parse_tflite

    model, result, x = latency_pruned
    before = estimate_latency(parse_tflite(_int8(model, x)), mcu).seconds
    after = estimate_latency(parse_tflite(_int8(result.model, x)), mcu).seconds
    alloc = result.allocation
    assert alloc.before == pytest.approx(before, rel=0.03) and alloc.after == pytest.approx(after, rel=0.03)
    assert after / before <= 0.5 * 1.03, (after, before)
    assert after / before >= 0.5 - 0.15, "the allocator should not overshoot far below the target"
    assert all(g.kept % 4 == 0 for g in result.groups if not g.frozen), "widths follow channel_multiple"


def test_keras_level_ops_match_the_converted_model(mcu):
    """BatchNormalization folded, ReLU fused into convs and Add, a separable conv as depthwise + 1x1, a
    softmax Dense as FC + SOFTMAX: the same op kinds and MACs as the .tflite, the same estimate within 3 %."""
    from edgepipe.estimate.latency import estimate_latency
    from edgepipe.estimate.workload import op_workloads
    from edgepipe.prune.latency_cost import fused_calls, workloads
    from edgepipe.tflite.model import parse_tflite

    keras.utils.set_random_seed(2)
    inputs = keras.Input((16, 16, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same", use_bias=False)(inputs)))
    y = L.BatchNormalization()(L.SeparableConv2D(16, 3, padding="same")(x))
    x = L.ReLU(6.0)(L.Add()([x, y]))
    x = L.MaxPooling2D()(x)
    model = keras.Model(inputs, L.Dense(10, activation="softmax")(L.Flatten()(x)))
    x_cal = np.random.default_rng(3).uniform(size=(16, 16, 16, 3)).astype("float32")
    tflite = parse_tflite(_int8(model, x_cal))
    space = prune_space(model, PruneSettings(), 4)
    costs = CostModel(space.graph, latency_model(model, "latency", mcu))
    mine = workloads(costs.calls(space.keep_id(space.full())), fused_calls(model))
    theirs = [w for w in op_workloads(tflite) if w.op not in ("RESHAPE",)]
    assert [(w.kernel, w.macs) for w in mine if w.op != "RESHAPE"] == [(w.kernel, w.macs) for w in theirs]
    assert costs.seconds(space.keep_id(space.full())) == pytest.approx(estimate_latency(tflite, mcu).seconds,
                                                                       rel=0.03)


def test_without_a_profile_latency_falls_back_to_macs_and_says_so(stem_heavy):
    model, space = stem_heavy
    sens = _linear(space, {"stem": 1.0, "mid": 1.0, "late": 1.0})
    alloc = choose(space, "latency", 0.6, sens, "given", latency=latency_model(model, "latency", None))
    assert alloc.counted_as == "MACs (latency proxy)"
    assert any("estimated by MACs" in n for n in alloc.notes)


@pytest.fixture(scope="session")
def bn_model():
    """conv -> BN -> ReLU -> conv -> BN -> head, BN statistics measured on the data (as after training)."""
    from edgepipe.prune.recalibrate import recalibrate_batchnorm

    keras.utils.set_random_seed(11)
    inputs = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = L.ReLU()(L.BatchNormalization(name="stem_bn")(x))
    x = L.Conv2D(16, 3, padding="same", name="body")(x)
    x = L.ReLU()(L.BatchNormalization(name="body_bn")(x))
    model = keras.Model(inputs, L.Dense(5, name="head")(L.GlobalAveragePooling2D()(x)))
    data = np.random.default_rng(1).uniform(size=(96, 12, 12, 3)).astype("float32")
    recalibrate_batchnorm(model, data)
    return model, data


def test_sensitivity_trials_are_recalibrated_like_the_build(bn_model):
    """Each trial's damage is the damage of the trial model after recalibrate_batchnorm on the same data,
    and stale statistics would have counted for more."""
    from edgepipe.prune.recalibrate import recalibrate_batchnorm
    from edgepipe.prune.sensitivity import _compare, _predict

    model, data = bn_model
    space = prune_space(model, PruneSettings(exclude=[]), 4)
    with_bn, said = measure(space, data, (0.5,))
    stale, said_stale = measure(space, data, (0.5,), recalibrate=False)
    assert "re-measuring BatchNormalization" in said and "BatchNormalization" not in said_stale
    stem = next(i for i in space.prunable if any(m.layer == "stem" for m in space.blocks[i].members))
    kept = list(space.full())
    kept[stem] = space.full()[stem] // 2
    trial, _ = space.build(kept)
    recalibrate_batchnorm(trial, data)
    expected = _compare(_predict(trial, data), _predict(model, data), 0.5).damage
    measured = {s.group: s.points[0].damage for s in with_bn}
    assert measured[stem] == pytest.approx(expected, rel=1e-5)
    assert measured[stem] < {s.group: s.points[0].damage for s in stale}[stem]


def test_a_build_prices_the_latency_target_with_its_profile(tmp_path, tiny_model_path, data_npz):
    from ep_helpers import write_project

    cfg = write_project(tmp_path, tiny_model_path, data_npz, prune={"target": {"latency": 0.6}, "exclude": []})
    res = CliRunner().invoke(cli_main(), ["build", "-t", "stm32h7", "-c", str(cfg), "-o", str(tmp_path / "o"),
                                          "--json"])
    assert res.exit_code in (0, 1), res.output
    alloc = json.loads(res.stdout)["prune"]["allocation"]
    assert "stm32h7" in alloc["counted_as"] and "cmsis-nn-dsp" in alloc["counted_as"], alloc["counted_as"]
    assert alloc["reached"] <= 0.6 and alloc["after"] < alloc["before"]


def cli_main():
    from edgepipe.cli import cli

    return cli
