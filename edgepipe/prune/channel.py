"""Channel pruning: the driver from a model and settings to a narrower model.

Reads like the table of contents of the method: build the dependency graph,
freeze what must stay, split units into groups, score them (all in
:func:`prune_space`), decide per group — a uniform ratio, or for a
``prune.target`` the ratios :mod:`edgepipe.prune.allocate` chooses from
measured sensitivity and cost — rebuild, measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np

from edgepipe.errors import ConfigError
from edgepipe.prune.graph import DependencyGraph
from edgepipe.prune.group import Block, Group, partition
from edgepipe.prune.importance import block_scores
from edgepipe.prune.rebuild import kept_indices, plan_inputs, plan_layers, rebuild
from edgepipe.prune.result import KeptLayer, PruneResult
from edgepipe.prune.settings import PruneSettings, check_layer_names
from edgepipe.prune.stats import compare, model_stats


@dataclass
class PruneSpace:
    """Everything a pruning decision is made over, built once per model.

    ``blocks`` are the groups before the decision and ``order[i]`` ranks
    block i's units from most to least important, so "keep ``k`` units of
    block i" is a complete decision. The sensitivity measurement and the
    allocator try many decisions on one space; :meth:`keep_id` turns one
    into the per-channel mask that ``rebuild`` and ``CostModel`` read.
    """

    model: keras.Model
    graph: DependencyGraph
    roots: np.ndarray
    blocks: list[Block]
    scores: list[np.ndarray]
    importance: list[str]
    order: list[np.ndarray]
    exclude: tuple[str, ...]
    channel_multiple: int

    @property
    def prunable(self) -> list[int]:
        """Indexes of the blocks that may lose units."""
        return [i for i, b in enumerate(self.blocks) if not b.frozen]

    def units(self, index: int) -> int:
        return len(self.blocks[index].roots)

    def full(self) -> list[int]:
        """Kept units per block when nothing is pruned."""
        return [len(b.roots) for b in self.blocks]

    def keep_id(self, kept: list[int]) -> np.ndarray:
        """Per channel id: kept? (block i keeps its ``kept[i]`` most important units)."""
        keep_root = np.ones(len(self.roots), dtype=bool)
        for block, order, count in zip(self.blocks, self.order, kept):
            keep_root[block.roots[order[count:]]] = False
        return keep_root[self.roots]

    def build(self, kept: list[int]):
        """The narrower model and its layer plans for one decision."""
        keep_id = self.keep_id(kept)
        plans = plan_layers(self.graph, keep_id)
        return rebuild(self.model, plans, plan_inputs(self.graph, keep_id)), plans


def prune_space(model: keras.Model, settings: PruneSettings, channel_multiple: int = 1) -> PruneSpace:
    """Graph, frozen channels, groups and their importance ranking: what every decision shares."""
    _check_arguments(settings, channel_multiple)
    graph = DependencyGraph(model)
    check_layer_names(settings, graph.layer_names)
    exclude = default_exclude(graph, settings.prune_first) if settings.exclude is None else tuple(settings.exclude)
    for name in exclude:
        graph.exclude(name, f"excluded layer {name}")
    roots = graph.roots()
    score = block_scores(graph, roots, settings.importance)
    blocks = partition(graph, roots)
    ranked = [score(b) for b in blocks]
    scores = [s for s, _ in ranked]
    order = [np.argsort(-s, kind="stable") for s in scores]
    return PruneSpace(model, graph, roots, blocks, scores, [u for _, u in ranked], order, exclude,
                      channel_multiple)


def prune_model(
    model: keras.Model, settings: PruneSettings, channel_multiple: int = 1, data=None, profile=None,
    reconstruct: bool = False,
) -> PruneResult:
    """Remove the least important channels of every group; return a new model.

    ``channel_multiple`` comes from the target profile: kept channel counts
    are rounded up to it, because kernels (and NPUs) slow down on odd widths.
    With ``settings.target`` the per-group ratios are chosen by
    :func:`edgepipe.prune.allocate.allocate` from each group's measured damage
    on ``data`` (representative inputs; without them a weight-norm proxy, and
    the report says so). ``profile``, the target profile, prices a ``latency``
    target with the device's own kernel cost model (else MACs stand in for it).
    ``reconstruct``: the caller will refit the pruned model by least squares
    (a build does without labelled training data), so the damage that guides a
    target's allocation is measured after that refit too. The input model is
    not modified.
    """
    space = prune_space(model, settings, channel_multiple)
    allocation = None
    if settings.target is None:
        ratios = [0.0 if b.frozen else group_ratio(b, settings) for b in space.blocks]
        kept = [kept_count(units, r, channel_multiple) for units, r in zip(space.full(), ratios)]
    else:
        from edgepipe.prune.allocate import allocate

        allocation = allocate(space, settings.target, data, profile=profile, reconstruct=reconstruct)
        kept = list(allocation.kept)
        ratios = [1.0 - k / u for k, u in zip(kept, space.full())]
    groups = decide(space, ratios, kept)
    new_model, plans = space.build(kept)
    layers, totals = compare(model_stats(model), model_stats(new_model))
    return PruneResult(
        model=new_model,
        method="channel",
        settings=settings.to_dict(),
        channel_multiple=channel_multiple,
        exclude=space.exclude,
        layers=layers,
        totals=totals,
        groups=tuple(groups),
        kept_whole=tuple(KeptLayer(p, r) for p, r in space.graph.unknown.items()),
        notes=(*_unused_names(settings, groups), *rounding_notes(groups, channel_multiple),
               *(allocation.notes if allocation else ())),
        kept_indices=kept_indices(plans),
        allocation=allocation,
    )


def _check_arguments(settings: PruneSettings, channel_multiple: int) -> None:
    if settings.method != "channel":
        raise ConfigError(
            "prune.method",
            f"prune_model does channel pruning, but method is {settings.method!r}",
            fix="call apply_mn_sparsity for method: mn",
        )
    if not isinstance(channel_multiple, int) or channel_multiple < 1:
        raise ConfigError("channel_multiple", f"must be a whole number >= 1, found {channel_multiple!r}")


def default_exclude(graph: DependencyGraph, prune_first: bool = False) -> tuple[str, ...]:
    """The first convolution (it sees raw pixels; not with ``prune_first``) and the layers that make outputs."""
    convs = [
        c.path for c in graph.calls
        if c.rule.kind == "producer" and "Conv" in type(c.op).__name__
    ]
    first = [] if prune_first else convs[:1]
    names = set(graph.layer_names)
    return tuple(dict.fromkeys(p for p in first + graph.output_paths if p in names))


def kept_count(units: int, ratio: float, multiple: int) -> int:
    """Units kept: ``units*(1-ratio)`` rounded up to ``multiple``, in [1, units]."""
    keep = units - math.floor(units * ratio + 1e-9)
    keep = -(-keep // multiple) * multiple
    return max(1, min(units, keep))


def decide(space: PruneSpace, ratios: list[float], kept: list[int]) -> list[Group]:
    """Groups as reported: the requested ratio and the units kept (after rounding)."""
    return [
        Group(index, block.members, len(block.roots), count, ratio, used, block.frozen)
        for index, (block, ratio, count, used) in enumerate(zip(space.blocks, ratios, kept, space.importance))
    ]


ROUNDING_NOTE = 0.05  # a requested ratio moved by more than this by rounding gets a note


def effective_ratio(group: Group) -> float:
    """The fraction of the group's units actually removed (after channel_multiple rounding)."""
    return 1.0 - group.kept / group.units if group.units else 0.0


def rounding_notes(groups: list[Group], multiple: int) -> tuple[str, ...]:
    """Say where channel_multiple rounding moved a ratio noticeably: the report must not claim 0.7
    when 0.5 was removed."""
    notes = []
    for g in groups:
        if g.frozen or g.ratio - effective_ratio(g) <= ROUNDING_NOTE:
            continue
        owner = next((m.layer for m in g.members if m.role == "out"), g.members[0].layer)
        notes.append(
            f"group {g.index} ({owner}): ratio {g.ratio:g} requested, {effective_ratio(g):.3g} removed: "
            f"{g.kept} of {g.units} units kept, rounded up to channel_multiple {multiple}"
        )
    return tuple(notes)


def _matches(path: str, name: str) -> bool:
    return path == name or path.startswith(name + "/")


def group_ratio(block: Block, settings: PruneSettings) -> float:
    """The per-layer ratio of a member that owns these channels (the smallest wins)."""
    named = [
        ratio for name, ratio in settings.per_layer.items()
        if any(_matches(m.layer, name) for m in block.members if m.role != "in")
    ]
    return min(named) if named else settings.ratio


def _unused_names(settings: PruneSettings, groups: list[Group]) -> tuple[str, ...]:
    owners = [m.layer for g in groups if not g.frozen for m in g.members if m.role != "in"]
    return tuple(
        f"per_layer entry {name!r} matches no prunable group (frozen or without own channels)"
        for name in settings.per_layer
        if not any(_matches(o, name) for o in owners)
    )
