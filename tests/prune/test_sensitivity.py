"""Sensitivity- and cost-aware pruning (prune.target): allocation, exact costs, honest rounding reports."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from keras import layers as L
from prune_archs import random_model

from edgepipe.cli import cli
from edgepipe.errors import ConfigError
from edgepipe.prune import PruneSettings, prune_model
from edgepipe.prune.channel import prune_space
from edgepipe.prune.cost import CostModel
from edgepipe.prune.stats import model_stats

TARGET = 0.5
TOLERANCE = 0.08  # reached MACs fraction lies in [target - tolerance, target]


def _inputs(shape, n: int = 128, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")


def _group(result, owner: str) -> dict:
    """The reported group whose filters ``owner`` produces."""
    groups = result.to_dict()["groups"]
    return next(g for g in groups if any(m["layer"] == owner and m["role"] == "out" for m in g["members"]))


@pytest.fixture(scope="session")
def early_heavy():
    """A 32x32 conv after the stem (most of the MACs) and two cheap 8x8 convs; a linear head."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="early")(x)
    x = L.MaxPooling2D(4)(x)
    x = L.Conv2D(32, 3, padding="same", activation="relu", name="late1")(x)
    x = L.Conv2D(32, 3, padding="same", activation="relu", name="late2")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(10, name="head")(x)), _inputs((32, 32, 3))


@pytest.fixture(scope="session")
def targeted(early_heavy):
    model, x = early_heavy
    return prune_model(model, PruneSettings.from_dict({"target": {"macs": TARGET}}), 4, data=x)


@pytest.fixture(scope="session")
def two_branches():
    """Two branches of equal cost concatenated; the 'dead' one's filters are scaled near zero."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, padding="same", name="stem")(inputs)
    alive = L.Conv2D(8, 3, padding="same", activation="relu", name="alive")(x)
    dead = L.Conv2D(8, 3, padding="same", activation="relu", name="dead")(x)
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="mix")(L.Concatenate()([alive, dead]))
    model = keras.Model(inputs, L.Dense(4, name="head")(L.GlobalAveragePooling2D()(x)))
    kernel, bias = model.get_layer("dead").get_weights()
    model.get_layer("dead").set_weights([kernel * 1e-4, bias * 0.0])
    return model, _inputs((16, 16, 3))


def test_target_reaches_the_macs_within_tolerance(targeted):
    alloc = targeted.allocation
    assert alloc.metric == "macs" and alloc.requested == TARGET
    assert TARGET - TOLERANCE <= alloc.reached <= TARGET, alloc.reached
    assert targeted.totals.macs_ratio == pytest.approx(alloc.reached), "counted MACs must be the rebuilt model's"
    assert "representative samples" in alloc.measured_on


def test_target_prunes_the_expensive_early_group_more_than_uniform(early_heavy, targeted):
    model, _ = early_heavy
    uniform = next(
        r for r in (prune_model(model, PruneSettings(ratio=q), 4) for q in np.arange(0.05, 0.96, 0.05))
        if r.totals.macs_ratio <= TARGET
    )
    early_uniform = _group(uniform, "early")["effective_ratio"]
    early_targeted = _group(targeted, "early")["effective_ratio"]
    assert early_uniform == 0.5 and early_targeted == 0.75, (early_uniform, early_targeted)
    late_uniform = _group(uniform, "late2")["effective_ratio"]
    assert _group(targeted, "late2")["effective_ratio"] < late_uniform, "cheap late layers keep more"


def test_report_gives_sensitivity_and_cost_per_group(targeted):
    doc = targeted.to_dict()["allocation"]
    assert set(doc) >= {"metric", "requested", "reached", "before", "after", "measured_on", "groups", "notes"}
    early = next(g for g in doc["groups"] if g["owner"] == "early")
    assert [p["removed"] for p in early["sensitivity"]] == [0.25, 0.5, 0.75]
    assert all(p["damage"] > 0 for p in early["sensitivity"])
    assert early["macs_removed"] > 0 and early["params_removed"] > 0
    json.dumps(targeted.to_dict())


def test_near_dead_group_is_pruned_before_a_group_that_matters(two_branches):
    model, x = two_branches
    result = prune_model(model, PruneSettings.from_dict({"target": {"macs": 0.8}}), 4, data=x)
    groups = {g.owner: g for g in result.allocation.groups}
    alive, dead = groups["alive"], groups["dead"]
    space = prune_space(model, PruneSettings(), 4)
    costs, full = CostModel(space.graph), space.full()
    alone = [costs.macs(space.keep_id([4 if i == g.group else u for i, u in enumerate(full)])) for g in (alive, dead)]
    assert alone[0] == alone[1] < costs.macs(space.keep_id(full)), "both branches cost the same"
    for a, d in zip(alive.sensitivity, dead.sensitivity):
        assert d.damage < 1e-3 * a.damage, (a, d)
    assert dead.ratio > alive.ratio, (dead, alive)



@pytest.fixture(scope="session")
def refittable_branch():
    """Two branches of equal cost into a 1x1 conv. In 'copies' filters 4-7 are twice filters 0-3, so
    when 0-3 go the next conv can take them back exactly by least squares (relu(2z) = 2 relu(z));
    'plain' has independent filters. Both are scaled so that losing half of either, unrefit, shows."""
    keras.utils.set_random_seed(7)
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, padding="same", name="stem")(inputs)
    plain = L.Conv2D(8, 3, padding="same", activation="relu", name="plain")(x)
    copies = L.Conv2D(8, 3, padding="same", activation="relu", name="copies")(x)
    x = L.Conv2D(16, 1, name="mix")(L.Concatenate()([plain, copies]))
    model = keras.Model(inputs, L.Dense(4, name="head")(L.GlobalAveragePooling2D()(x)))
    kernel, bias = model.get_layer("copies").get_weights()
    kernel[..., 4:], bias[4:] = 2 * kernel[..., :4], 2 * bias[:4]
    model.get_layer("copies").set_weights([3 * kernel, 3 * bias])
    return model, _inputs((16, 16, 3))


def test_damage_is_measured_after_the_refit_the_build_will_run(refittable_branch):
    """A build that reconstructs (label-free, by default) must price each group by the damage left
    after the refit: half of 'copies' costs nothing then, though unrefit it looks worse than half of
    'plain'. Priced without the refit, the allocation would cut the wrong branch."""
    model, x = refittable_branch
    settings = PruneSettings.from_dict({"target": {"macs": 0.8}, "exclude": ["stem", "mix", "head"]})
    unrefit = prune_model(model, settings, 4, data=x)
    refit = prune_model(model, settings, 4, data=x, reconstruct=True)
    before = {g.owner: g for g in unrefit.allocation.groups}
    after = {g.owner: g for g in refit.allocation.groups}
    assert before["copies"].sensitivity[0].damage > before["plain"].sensitivity[0].damage
    assert after["copies"].sensitivity[0].damage < 1e-3 < after["plain"].sensitivity[0].damage
    assert (before["plain"].kept, before["copies"].kept) == (4, 8)
    assert (after["plain"].kept, after["copies"].kept) == (8, 4)
    assert refit.kept_indices["copies"]["out"] == (4, 5, 6, 7), "the doubled filters stay"
    assert "least-squares reconstruction" in refit.allocation.measured_on
    assert "least-squares" not in unrefit.allocation.measured_on

def test_without_data_the_proxy_is_named(early_heavy):
    model, _ = early_heavy
    result = prune_model(model, PruneSettings.from_dict({"target": {"size": 0.6}}), 4)
    assert result.allocation.measured_on.startswith("weights only")
    assert result.totals.params_ratio <= 0.6


def test_latency_target_says_it_uses_macs(early_heavy):
    model, x = early_heavy
    result = prune_model(model, PruneSettings.from_dict({"target": {"latency": 0.6}}), 4, data=x[:16])
    assert any("estimated by MACs" in n for n in result.notes)
    assert result.totals.macs_ratio <= 0.6


def test_rounding_reports_the_effective_ratio_and_a_note():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, name="stem")(inputs)
    x = L.Conv2D(8, 3, activation="relu", name="body")(x)
    model = keras.Model(inputs, L.Dense(2, name="head")(L.GlobalAveragePooling2D()(x)))
    result = prune_model(model, PruneSettings(ratio=0.7), channel_multiple=4)
    body = _group(result, "body")
    assert (body["ratio"], body["effective_ratio"], body["kept"], body["units"]) == (0.7, 0.5, 4, 8)
    assert any("ratio 0.7 requested, 0.5 removed" in n and "channel_multiple 4" in n for n in result.notes)
    quiet = prune_model(model, PruneSettings(ratio=0.5), channel_multiple=4)
    assert not any("requested" in n for n in quiet.notes), "no note when rounding changes nothing"


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_counted_costs_equal_the_rebuilt_model(seed):
    """CostModel counts a decision without rebuilding; it must agree with the rebuilt model exactly."""
    model = random_model(seed)
    space = prune_space(model, PruneSettings(exclude=[]), 1)
    rng = np.random.default_rng(seed)
    kept = [u if b.frozen else int(rng.integers(1, u + 1)) for b, u in zip(space.blocks, space.full())]
    new_model, _ = space.build(kept)
    stats = model_stats(new_model).values()
    costs = CostModel(space.graph)
    assert costs.macs(space.keep_id(kept)) == sum(s.macs for s in stats)
    assert costs.params(space.keep_id(kept)) == sum(s.params for s in stats)


@pytest.mark.parametrize("given, key", [
    ({"target": {"macs": 1.5}}, "prune.target.macs"),
    ({"target": {"foo": 0.5}}, "prune.target.foo"),
    ({"target": {}}, "prune.target"),
    ({"target": {"macs": 0.5, "size": 0.5}}, "prune.target"),
])
def test_bad_targets_name_the_key(given, key):
    with pytest.raises(ConfigError) as exc:
        PruneSettings.from_dict(given)
    assert str(exc.value).startswith(key + ":"), exc.value


@pytest.mark.parametrize("other", [{"ratio": 0.5}, {"per_layer": {"conv": 0.5}}])
def test_target_excludes_ratio_and_per_layer(other):
    with pytest.raises(ConfigError) as exc:
        PruneSettings.from_dict({"target": {"macs": 0.5}, **other})
    (name,) = other
    assert f"prune.{name} and prune.target are mutually exclusive" in str(exc.value)


def test_settings_with_a_target_round_trip():
    settings = PruneSettings.from_dict({"target": {"macs": "0.5"}})
    assert settings.to_dict()["target"] == {"macs": 0.5} and "ratio" not in settings.to_dict()
    assert PruneSettings.from_dict(settings.to_dict()) == settings


def test_cli_prune_target_builds_and_reports_the_reached_macs(tmp_path):
    res = CliRunner().invoke(cli, ["build", "--example", "digits", "-t", "rpi4", "--prune-target", "macs=0.5",
                                   "-o", str(tmp_path), "--json"])
    assert res.exit_code in (0, 1), res.output
    prune = json.loads(res.output)["prune"]
    assert prune["settings"]["target"] == {"macs": 0.5}
    assert TARGET - TOLERANCE <= prune["allocation"]["reached"] <= TARGET
    assert prune["totals"]["macs_ratio"] == pytest.approx(prune["allocation"]["reached"])


@pytest.mark.parametrize("args, key", [
    (["--prune-target", "macs=1.5"], "prune.target.macs"),
    (["--prune-target", "foo=0.5"], "prune.target.foo"),
    (["--prune-target", "macs"], "--prune-target"),
    (["--prune-target", "macs=0.5", "--prune-ratio", "0.5"], "prune.ratio and prune.target"),
])
def test_cli_bad_prune_target_exits_2_with_one_line(tmp_path, args, key):
    res = CliRunner().invoke(cli, ["build", "--example", "digits", "-t", "rpi4", "-o", str(tmp_path), *args])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], res.output


def test_a_build_measures_sensitivity_on_representative_data_else_training_inputs():
    from types import SimpleNamespace as NS

    from edgepipe.prune.sensitivity import sensitivity_inputs

    rep, train = NS(x="rep"), NS(x="train")
    assert sensitivity_inputs(NS(representative=rep, train=train)) == "rep"
    assert sensitivity_inputs(NS(representative=None, train=train)) == "train"
    assert sensitivity_inputs(NS(representative=None, train=None)) is None


@pytest.fixture(scope="session")
def wide_early():
    """A 1x1 conv widening to 32 channels at 32x32 (few MACs, the activation peak) before expensive 8x8 convs."""
    keras.utils.set_random_seed(9)
    inputs = keras.Input((32, 32, 1))
    x = L.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = L.Conv2D(32, 1, activation="relu", name="wide")(x)
    x = L.MaxPooling2D(4)(x)
    x = L.Conv2D(64, 3, padding="same", activation="relu", name="heavy1")(x)
    x = L.Conv2D(64, 3, padding="same", activation="relu", name="heavy2")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(10, name="head")(x)), _inputs((32, 32, 1))


def _peak_working_set(model) -> int:
    from edgepipe.prune.walk import elements, iter_calls

    return max(sum(map(elements, c.in_shapes)) + sum(map(elements, c.out_shapes)) for c in iter_calls(model))


def test_a_ram_target_narrows_the_activation_peak(wide_early):
    model, x = wide_early
    before = _peak_working_set(model)  # the wide conv: 8 + 32 channels at 32x32
    by_ram = prune_model(model, PruneSettings.from_dict({"target": {"ram": 0.5}}), 4, data=x)
    assert by_ram.allocation.metric == "ram" and "activation bytes" in by_ram.allocation.counted_as
    assert by_ram.allocation.reached <= 0.5
    assert _peak_working_set(by_ram.model) <= 0.5 * before
    assert _group(by_ram, "wide")["effective_ratio"] >= 0.5
    assert _group(by_ram, "heavy2")["effective_ratio"] == 0  # far from the peak: nothing to gain there


def test_ram_counts_match_the_rebuilt_model(wide_early):
    model, _ = wide_early
    space = prune_space(model, PruneSettings(), 4)
    kept = space.full()
    wide = next(i for i, b in enumerate(space.blocks) if any(m.layer == "wide" and m.role == "out" for m in b.members))
    kept[wide] = 12  # the peak's group loses 20 of its 32 channels
    costs = CostModel(space.graph)
    rebuilt, _ = space.build(kept)
    assert max(costs.working_sets(space.keep_id(kept))) == _peak_working_set(rebuilt)
    assert costs.measure("ram", space.keep_id(kept)) < costs.measure("ram", space.keep_id(space.full()))
