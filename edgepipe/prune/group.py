"""Groups: the units of structured pruning, after Torch-Pruning's ``Group``.

A group is a set of coupled channels of identical make-up, pruned together
with one ratio. Worked example::

    conv_a -> bn_a --+
                     add -> relu -> conv_c
    conv_b ----------+

``add`` unites channel i of conv_a and channel i of conv_b, so each of the
16 units of this group is {filter i of conv_a, gamma/beta/mean/var i of bn_a,
filter i of conv_b, input slice i of conv_c}. Pruning 25% removes the 4
least important units from all four layers at once; the model still adds
matching channels, and conv_c no longer reads the removed ones.

After a Concatenate a consumer reads several groups (one per producer), and
after a Flatten each unit covers H*W rows of the Dense that follows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from edgepipe.prune.graph import DependencyGraph

# Which channel vector of a call makes the layer a member, and in which role.
MEMBER_VECTORS = {
    "producer": (("in", "in"), ("out", "out")),
    "depthwise": (("through", "in"),),
    "channelwise": (("through", "in"),),
    "reshape": (("through", "in"),),
}


@dataclass(frozen=True)
class GroupMember:
    """A layer touched by a group: ``role`` "out" loses filters, "in" loses input
    slices, "through" loses per-channel weights; ``per_unit`` positions per unit."""

    layer: str
    role: str
    per_unit: int


@dataclass(frozen=True)
class Block:
    """A group before the pruning decision: its members and its unit ids."""

    members: tuple[GroupMember, ...]
    frozen: str | None
    roots: np.ndarray


@dataclass(frozen=True)
class Group:
    """A decided group, as reported: ``units`` before, ``kept`` after."""

    index: int
    members: tuple[GroupMember, ...]
    units: int
    kept: int
    ratio: float
    importance: str
    frozen: str | None

    @property
    def pruned(self) -> bool:
        return self.kept < self.units


def partition(graph: DependencyGraph, roots: np.ndarray) -> list[Block]:
    """Split the prunable units into groups of identical membership."""
    members_of: dict[int, list[GroupMember]] = defaultdict(list)
    for call in graph.first_calls():
        for role, vector in MEMBER_VECTORS.get(call.rule.kind, ()):
            unit_ids, counts = np.unique(roots[call.vector(vector)], return_counts=True)
            for unit, count in zip(unit_ids.tolist(), counts.tolist()):
                members_of[unit].append(GroupMember(call.path, role, count))
    frozen = graph.frozen_roots(roots)
    blocks: dict[tuple, list[int]] = {}
    for unit, members in members_of.items():
        blocks.setdefault((tuple(members), frozen.get(unit)), []).append(unit)
    return [Block(m, f, np.array(units)) for (m, f), units in blocks.items()]
