"""MACs, parameters and activation bytes of a pruning decision, counted without rebuilding the model.

The allocator tries hundreds of candidate decisions; rebuilding a Keras model
for each would take minutes. A decision is a boolean per channel id
(``keep_id``, as ``rebuild.plan_layers`` takes it), and every layer's width
follows from the ids it reads and writes, so both counts are exact: MACs
recompute :func:`stats.call_macs` with the kept widths; parameters slice
each weight's shape along the axes its rule names, as ``LayerPlan.slice``
slices the values. Tests check both against ``model_stats`` of the rebuilt
model.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from math import prod

import numpy as np

from edgepipe.prune.graph import DependencyGraph, TracedCall
from edgepipe.prune.stats import call_macs
from edgepipe.prune.walk import Call, elements, iter_calls, leaf_layers


#: The norm a ``ram`` target takes over the calls' working sets: high enough to be the peak's business.
RAM_NORM = 8


def _with_width(shape: tuple, width: int) -> tuple:
    return (*shape[:-1], width)


def _narrow(shape: tuple, ids: np.ndarray, keep_id: np.ndarray) -> tuple:
    """``shape`` with its last axis at the number of kept ids, when the ids run along that axis."""
    if not shape or shape[-1] is None or ids is None or len(ids) != shape[-1]:
        return shape
    return _with_width(shape, int(keep_id[ids].sum()))


@dataclass(frozen=True)
class _Counted:
    call: Call
    traced: TracedCall | None


class CostModel:
    """``macs(keep_id)`` and ``params(keep_id)`` of the model pruned as ``keep_id`` says; with a
    ``latency`` model (:class:`edgepipe.prune.latency_cost.LatencyCost`), its estimated seconds too."""

    def __init__(self, graph: DependencyGraph, latency=None):
        self.latency = latency
        traced: dict[str, list[TracedCall]] = defaultdict(list)
        for call in graph.calls:
            traced[call.path].append(call)
        seen: dict[str, int] = defaultdict(int)
        self._calls: list[_Counted] = []
        for call in iter_calls(graph.model):
            index = seen[call.path]
            seen[call.path] += 1
            matches = traced.get(call.path, [])
            self._calls.append(_Counted(call, matches[index] if index < len(matches) else None))
        self._first = {c.path: c for c in graph.first_calls()}
        self._layers = leaf_layers(graph.model)

    def macs(self, keep_id: np.ndarray) -> int:
        """Multiply-accumulates of the pruned model (same counting as ``stats.model_stats``)."""
        return sum(call_macs(self._narrowed(c, keep_id)) for c in self._calls)

    def calls(self, keep_id: np.ndarray) -> list[Call]:
        """Every leaf call in topological order, with the widths it has once pruned as ``keep_id`` says."""
        return [self._narrowed(c, keep_id) for c in self._calls]

    def seconds(self, keep_id: np.ndarray) -> float:
        """Estimated latency of the pruned model on the target (needs a ``latency`` model)."""
        return self.latency.seconds(self.calls(keep_id))

    def params(self, keep_id: np.ndarray) -> int:
        """Parameters of the pruned model (one byte each once int8)."""
        return sum(self._layer_params(path, layer, keep_id) for path, layer in self._layers.items())

    def working_sets(self, keep_id: np.ndarray) -> list[int]:
        """Per call, its inputs' and outputs' elements: the bytes it needs live at once in int8."""
        return [sum(map(elements, c.in_shapes)) + sum(map(elements, c.out_shapes)) for c in self.calls(keep_id)]

    def activations(self, keep_id: np.ndarray) -> float:
        """What a ``ram`` target counts: the soft maximum (the ``RAM_NORM``-norm) of the calls' working sets.

        A microcontroller's arena is at least the largest working set and is usually set by it, but the
        plain maximum does not move when several calls tie at the peak (a DS-CNN's every layer is 64
        channels at 25x5) and pruning any one of them lowers nothing; the norm falls with each of them,
        most with the largest, and equals the maximum when one call dominates."""
        sets = np.asarray(self.working_sets(keep_id), dtype=np.float64)
        top = float(sets.max()) if len(sets) else 0.0
        return top * float(np.sum((sets / top) ** RAM_NORM)) ** (1.0 / RAM_NORM) if top else 0.0

    def measure(self, metric: str, keep_id: np.ndarray) -> float:
        """``latency``: the target's per-kernel estimate when a ``latency`` model was given, else MACs
        (the proxy; the allocation's ``counted_as`` says which); ``ram``: :meth:`activations`."""
        if metric == "size":
            return self.params(keep_id)
        if metric == "ram":
            return self.activations(keep_id)
        if metric == "latency" and self.latency is not None:
            return self.seconds(keep_id)
        return self.macs(keep_id)

    @staticmethod
    def _narrowed(counted: _Counted, keep_id: np.ndarray) -> Call:
        """The call with each input's and output's last axis at its kept width. A tensor whose ids do not
        match its last axis (a reshape that moves channels) keeps its shape."""
        call, traced = counted.call, counted.traced
        if traced is None or len(traced.inputs) != len(call.in_shapes) or len(traced.outputs) != len(call.out_shapes):
            return call
        ins = tuple(_narrow(s, ids, keep_id) for s, ids in zip(call.in_shapes, traced.inputs))
        outs = tuple(_narrow(s, ids, keep_id) for s, ids in zip(call.out_shapes, traced.outputs))
        return replace(call, in_shapes=ins, out_shapes=outs)

    def _layer_params(self, path: str, layer, keep_id: np.ndarray) -> int:
        traced = self._first.get(path)
        if traced is None or not traced.rule.weights:
            return layer.count_params()
        total = 0
        for weight in layer.weights:
            shape = list(weight.shape)
            for axis, vector in traced.rule.weights.get(weight.name, ()):
                mask = keep_id[traced.vector(vector)]
                if shape[axis] == len(mask):
                    shape[axis] = int(mask.sum())
            total += prod(shape)
        return total
