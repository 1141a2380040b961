"""Channel pruning: the driver from a model and settings to a narrower model.

Reads like the table of contents of the method: build the dependency graph,
freeze what must stay, split units into groups, score them, decide per
group, rebuild, measure.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from edgepipe.errors import ConfigError
from edgepipe.prune.graph import DependencyGraph
from edgepipe.prune.group import Block, Group, partition
from edgepipe.prune.importance import block_scores
from edgepipe.prune.rebuild import plan_inputs, plan_layers, rebuild
from edgepipe.prune.result import KeptLayer, PruneResult
from edgepipe.prune.settings import PruneSettings, check_layer_names
from edgepipe.prune.stats import compare, model_stats


def prune_model(
    model: keras.Model, settings: PruneSettings, channel_multiple: int = 1
) -> PruneResult:
    """Remove the least important channels of every group; return a new model.

    ``channel_multiple`` comes from the target profile: kept channel counts
    are rounded up to it, because kernels (and NPUs) slow down on odd widths.
    The input model is not modified.
    """
    _check_arguments(settings, channel_multiple)
    graph = DependencyGraph(model)
    check_layer_names(settings, graph.layer_names)
    exclude = default_exclude(graph) if settings.exclude is None else tuple(settings.exclude)
    for name in exclude:
        graph.exclude(name, f"excluded layer {name}")
    roots = graph.roots()
    score = block_scores(graph, roots, settings.importance)
    groups, pruned = decide(partition(graph, roots), settings, channel_multiple, score)
    keep_id = ~np.isin(roots, pruned)
    plans = plan_layers(graph, keep_id)
    new_model = rebuild(model, plans, plan_inputs(graph, keep_id))
    layers, totals = compare(model_stats(model), model_stats(new_model))
    return PruneResult(
        model=new_model,
        method="channel",
        settings=settings.to_dict(),
        channel_multiple=channel_multiple,
        exclude=exclude,
        layers=layers,
        totals=totals,
        groups=tuple(groups),
        kept_whole=tuple(KeptLayer(p, r) for p, r in graph.unknown.items()),
        notes=_unused_names(settings, groups),
        kept_indices={path: plan.kept_indices() for path, plan in plans.items()},
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


def default_exclude(graph: DependencyGraph) -> tuple[str, ...]:
    """The first convolution (it sees raw pixels) and the layers that make outputs."""
    convs = [
        c.path for c in graph.calls
        if c.rule.kind == "producer" and "Conv" in type(c.op).__name__
    ]
    names = set(graph.layer_names)
    return tuple(dict.fromkeys(p for p in convs[:1] + graph.output_paths if p in names))


def kept_count(units: int, ratio: float, multiple: int) -> int:
    """Units kept: ``units*(1-ratio)`` rounded up to ``multiple``, in [1, units]."""
    keep = units - math.floor(units * ratio + 1e-9)
    keep = -(-keep // multiple) * multiple
    return max(1, min(units, keep))


def decide(blocks: list[Block], settings: PruneSettings, multiple: int, score):
    """Groups as reported and the unit ids to remove."""
    groups, pruned = [], [np.zeros(0, dtype=np.int64)]
    for index, block in enumerate(blocks):
        units = len(block.roots)
        ratio = 0.0 if block.frozen else group_ratio(block, settings)
        scores, used = score(block)
        kept = units if block.frozen else kept_count(units, ratio, multiple)
        order = np.argsort(-scores, kind="stable")
        pruned.append(block.roots[order[kept:]])
        groups.append(Group(index, block.members, units, kept, ratio, used, block.frozen))
    return groups, np.concatenate(pruned)


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
