"""Result objects: frozen dataclasses whose ``to_dict()`` is JSON-able.

The library never prints; the pipeline renders these into its report.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgepipe.prune.group import Group


def to_jsonable(value: Any) -> Any:
    """Dataclasses, tuples, numpy scalars -> dicts, lists, plain numbers."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("report", True)
        }
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _ratio(before: int, after: int) -> float | None:
    return after / before if before else None


@dataclass(frozen=True)
class Change:
    """One number before and after pruning."""

    before: int | None
    after: int | None


@dataclass(frozen=True)
class LayerChange:
    name: str
    class_name: str
    channels_in: Change
    channels_out: Change
    params: Change
    macs: Change


@dataclass(frozen=True)
class Totals:
    params: Change
    macs: Change

    @property
    def params_ratio(self) -> float | None:
        """after / before (0.3 = 70% fewer parameters)."""
        return _ratio(self.params.before, self.params.after)

    @property
    def macs_ratio(self) -> float | None:
        return _ratio(self.macs.before, self.macs.after)


@dataclass(frozen=True)
class KeptLayer:
    """A layer whose channels were not pruned, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class PruneResult:
    """What channel pruning did. ``model`` is the new, narrower Keras model;
    ``kept_indices[layer][vector]`` are the original positions kept along the
    layer's "in", "mid" (separable) and "out" channel axes (not in ``to_dict``);
    ``allocation`` is how a ``prune.target`` was met (an ``allocate.Allocation``,
    None for a uniform ratio)."""

    model: Any = field(repr=False, compare=False, metadata={"report": False})
    method: str
    settings: dict
    channel_multiple: int
    exclude: tuple[str, ...]
    layers: tuple[LayerChange, ...]
    totals: Totals
    groups: tuple[Group, ...]
    kept_whole: tuple[KeptLayer, ...]
    notes: tuple[str, ...] = ()
    kept_indices: dict = field(default_factory=dict, repr=False, metadata={"report": False})
    allocation: Any = None

    def to_dict(self) -> dict:
        """Each group also gets ``effective_ratio``: the fraction of its units actually removed, which
        channel_multiple rounding can make smaller than the requested ``ratio``."""
        data = to_jsonable(self)
        data["totals"]["params_ratio"] = self.totals.params_ratio
        data["totals"]["macs_ratio"] = self.totals.macs_ratio
        for group, row in zip(self.groups, data["groups"]):
            row["effective_ratio"] = 1.0 - group.kept / group.units if group.units else 0.0
        return data
