"""Per-group ratios that reach a pruning target with the least measured damage.

A uniform ratio removes the same share of every group, so the expensive
high-resolution early layers lose as little in MACs as the cheap late ones
and a 50 % ratio buys far less than 2x. Given ``prune.target`` (the fraction
of the original MACs, parameters or latency to keep), the allocator:

1. measures every prunable group's damage alone at a few ratios
   (:mod:`edgepipe.prune.sensitivity`);
2. starts from the unpruned model and repeatedly takes the one step — one
   group losing one more ``channel_multiple`` of units — with the least
   added damage per unit of cost removed (damage interpolated between the
   measured ratios; cost counted exactly for the whole decision by
   :class:`edgepipe.prune.cost.CostModel`, so overlaps where a layer's input
   and output both shrink are counted right);
3. when some steps would reach the target, takes the least damaging of
   those instead (the last step need not be efficient, only sufficient:
   a big coarse step of a cheap-per-MAC group would otherwise overshoot)
   and stops;
4. then gives back what it can: while some group can regain one
   ``channel_multiple`` of units with the cost still at or below the
   target, the group whose return lowers damage most regains it. Steps of
   a big early group are coarse, and without this the result would
   overshoot the target by up to one such step.

Cost is counted as the target says: MACs, parameters, activation bytes
(``ram``: :meth:`~edgepipe.prune.cost.CostModel.activations`), or for ``latency`` the
seconds the target's own per-kernel latency model gives the narrowed layers
(:mod:`edgepipe.prune.latency_cost`), so a depthwise layer or a first layer
with one input channel is priced as the device runs it. The target profile
reaches the allocator as ``profile=`` (from a build, through ``prune_model``).
Without one, latency falls back to MACs and the notes say so.

Each group stops at the largest ratio that was measured for it (damage is
interpolated, never extrapolated), so a very low target may be out of reach:
the result then says how far it got, in ``notes``. Damages are assumed to add
up across groups, which holds for small damages and is what makes a greedy
choice sensible; the report gives the measured figures so a user can check.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgepipe.prune.cost import CostModel
from edgepipe.prune.sensitivity import RATIOS, GroupSensitivity, Point, measure

EPSILON = 1e-12
METRIC_UNITS = {"macs": "MACs", "size": "parameters", "latency": "MACs (latency proxy)",
                "ram": "activation bytes (8-norm of the layers' working sets)"}


@dataclass(frozen=True)
class GroupAllocation:
    """One group's share: kept units, fraction removed, its measured damage points, and the cost this
    group's pruning removes when applied alone to the unpruned model."""

    group: int
    owner: str
    units: int
    kept: int
    ratio: float
    estimated_damage: float
    sensitivity: tuple[Point, ...]
    macs_removed: int
    params_removed: int
    seconds_removed: float | None = None  # latency targets with a cost model: estimated seconds, group alone


@dataclass(frozen=True)
class Allocation:
    """How a target was met: requested and reached fraction of the metric kept, per-group shares."""

    metric: str
    counted_as: str
    requested: float
    reached: float
    before: int
    after: int
    measured_on: str
    groups: tuple[GroupAllocation, ...]
    kept: tuple[int, ...]
    notes: tuple[str, ...] = ()


def next_kept(units: int, kept: int, multiple: int) -> int:
    """The next smaller allowed kept count: the largest multiple of ``multiple`` below ``kept`` (0 if none)."""
    return (kept - 1) // multiple * multiple


def allocate(space, target, data, *, profile=None, recalibrate: bool | None = None,
             reconstruct: bool = False) -> Allocation:
    """Kept units per block of ``space`` (a ``channel.PruneSpace``) that reach ``target`` (a
    ``settings.PruneTarget``) by the greedy rule in this module's docstring.

    ``profile``: the resolved target profile whose latency model prices a ``latency`` target (none:
    MACs). ``recalibrate``, ``reconstruct``: passed to :func:`~edgepipe.prune.sensitivity.measure`
    (``reconstruct``: the build will refit the pruned model, so damage is measured after the refit)."""
    sensitivities, measured_on = measure(space, data, recalibrate=recalibrate, reconstruct=reconstruct)
    return choose(space, target.metric, target.fraction, sensitivities, measured_on,
                  latency=latency_model(space.model, target.metric, profile))


def latency_model(model, metric: str, profile=None):
    """The :class:`~edgepipe.prune.latency_cost.LatencyCost` a ``latency`` target is counted with, or None."""
    if metric != "latency" or profile is None:
        return None
    from edgepipe.prune.latency_cost import for_profile

    return for_profile(model, profile)


def choose(space, metric: str, fraction: float, sensitivities: list[GroupSensitivity],
           measured_on: str, *, latency=None) -> Allocation:
    """The greedy allocation itself, given measured sensitivities (separate so tests can give their own).

    ``latency``: a ``LatencyCost`` pricing a ``latency`` target (None: MACs stand in for it)."""
    costs = CostModel(space.graph, latency)
    kept = space.full()
    before = costs.measure(metric, space.keep_id(kept))
    goal, current = fraction * before, before
    by_group = {s.group: s for s in sensitivities}
    while current > goal + EPSILON:
        step = _best_step(space, costs, metric, kept, current, goal, by_group)
        if step is None:
            break
        index, count, current = step
        kept[index] = count
    while (back := _best_return(space, costs, metric, kept, goal, by_group)) is not None:
        index, count, current = back
        kept[index] = count
    return _summary(space, costs, metric, fraction, kept, before, current, by_group, measured_on)


def _best_step(space, costs: CostModel, metric: str, kept: list[int], current: int, goal: float,
               by_group: dict[int, GroupSensitivity]):
    """(group, new kept count, new cost): among steps that reach ``goal`` the least damaging, else the
    least damage per cost removed; None when no group can lose more."""
    best, best_key = None, None
    for index, sens in by_group.items():
        units = space.units(index)
        count = next_kept(units, kept[index], space.channel_multiple)
        if count < 1 or 1.0 - count / units > sens.max_removed + EPSILON:
            continue
        trial = list(kept)
        trial[index] = count
        cost = costs.measure(metric, space.keep_id(trial))
        saved = current - cost
        if saved <= 0:
            continue
        added = max(sens.damage_at(1.0 - count / units) - sens.damage_at(1.0 - kept[index] / units), 0.0)
        finishes = cost <= goal + EPSILON
        key = (not finishes, added if finishes else added / saved, -saved)
        if best_key is None or key < best_key:
            best, best_key = (index, count, cost), key
    return best


def _best_return(space, costs: CostModel, metric: str, kept: list[int], goal: float,
                 by_group: dict[int, GroupSensitivity]):
    """(group, larger kept count, new cost) that still meets ``goal`` and lowers damage most, or None."""
    best, best_key = None, None
    for index, sens in by_group.items():
        units = space.units(index)
        if kept[index] >= units:
            continue
        count = min(units, kept[index] + space.channel_multiple)
        trial = list(kept)
        trial[index] = count
        cost = costs.measure(metric, space.keep_id(trial))
        if cost > goal + EPSILON:
            continue
        relief = sens.damage_at(1.0 - kept[index] / units) - sens.damage_at(1.0 - count / units)
        key = (-relief, cost)
        if best_key is None or key < best_key:
            best, best_key = (index, count, cost), key
    return best


def _summary(space, costs: CostModel, metric: str, fraction: float, kept: list[int], before: int,
             after: int, by_group: dict[int, GroupSensitivity], measured_on: str) -> Allocation:
    full = space.full()
    macs0, params0 = costs.macs(space.keep_id(full)), costs.params(space.keep_id(full))
    timed = metric == "latency" and costs.latency is not None
    seconds0 = costs.seconds(space.keep_id(full)) if timed else None
    groups = []
    for index, sens in by_group.items():
        alone = list(full)
        alone[index] = kept[index]
        keep = space.keep_id(alone)
        units = full[index]
        removed = 1.0 - kept[index] / units
        groups.append(GroupAllocation(
            index, _owner(space.blocks[index]), units, kept[index], removed, sens.damage_at(removed),
            sens.points, macs0 - costs.macs(keep), params0 - costs.params(keep),
            seconds0 - costs.seconds(keep) if timed else None))
    reached = after / before if before else 1.0
    counted = costs.latency.description if timed else METRIC_UNITS[metric]
    notes = []
    if reached > fraction + EPSILON:
        notes.append(f"prune.target {metric}={fraction:g} was not reached: {reached:.3f} of the original "
                     f"{'estimated latency' if timed else counted} remain with every group at the largest ratio measured for it "
                     f"({', '.join(str(r) for r in RATIOS)}); lower channel_multiple or exclude fewer layers")
    if metric == "latency" and not timed:
        notes.append("prune.target latency is estimated by MACs: no target profile with a latency cost model "
                     "(cost_model.kernels or int8_macs_per_second) was given")
    return Allocation(metric, counted, fraction, reached, before, after, measured_on,
                      tuple(groups), tuple(kept), tuple(notes))


def _owner(block) -> str:
    return next((m.layer for m in block.members if m.role == "out"), block.members[0].layer)

