"""How much each prunable unit matters: weight norms summed over a group's members.

``l1``/``l2``: the norm of every slice a unit owns (producer filters, depthwise
kernels, consumer input slices) added up, as Torch-Pruning's group
importance does. ``bn``: the sum of |gamma| of the BatchNormalization layers
in the unit (network slimming); groups without one fall back to ``l1``.
"""

from __future__ import annotations

import numpy as np

from edgepipe.prune.graph import DependencyGraph
from edgepipe.prune.group import Block


def _norms(value: np.ndarray, axis: int, p: int) -> np.ndarray:
    """Norm of every slice of ``value`` along ``axis``."""
    rows = np.moveaxis(value, axis, 0).reshape(value.shape[axis], -1)
    return np.abs(rows).sum(axis=1) if p == 1 else np.sqrt((rows**2).sum(axis=1))


def unit_scores(graph: DependencyGraph, roots: np.ndarray, criterion: str) -> np.ndarray:
    """Score per unit id (index by root id; other entries are 0)."""
    scores = np.zeros(len(roots))
    p = 2 if criterion == "l2" else 1
    for call in graph.first_calls():
        values = {w.name: np.asarray(w.numpy()) for w in call.op.weights} if call.rule.weights else {}
        names = ("gamma",) if criterion == "bn" else call.rule.kernels
        for name in names:
            if name not in values:
                continue
            for axis, vector in call.rule.weights[name]:
                np.add.at(scores, roots[call.vector(vector)], _norms(values[name], axis, p))
    return scores


def block_scores(graph: DependencyGraph, roots: np.ndarray, criterion: str):
    """A function Block -> (scores of its units, criterion actually used)."""
    primary = unit_scores(graph, roots, criterion)
    fallback = unit_scores(graph, roots, "l1") if criterion == "bn" else primary
    has_bn = {
        c.path
        for c in graph.first_calls()
        if "gamma" in c.rule.weights and any(w.name == "gamma" for w in c.op.weights)
    }

    def score(block: Block) -> tuple[np.ndarray, str]:
        if criterion == "bn" and not any(m.layer in has_bn for m in block.members):
            return fallback[block.roots], "l1 (no BatchNormalization in group)"
        return primary[block.roots], criterion

    return score
