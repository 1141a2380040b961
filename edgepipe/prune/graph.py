"""The dependency graph: which channels of a Keras model must be pruned together.

Named after Torch-Pruning's ``DependencyGraph``, built differently: every
channel of every symbolic tensor carries an integer id, and walking the
layer graph once propagates the ids. A Conv/Dense creates fresh ids for its
output channels; BatchNormalization, activations, pooling and depthwise
convs pass them through; Add/Multiply/... unite the ids of their inputs
position by position; Concatenate concatenates the id vectors; Flatten tiles
them (channel ``c`` of an HxWxC tensor becomes rows ``{i*C + c}``). A class
of united ids is one prunable unit: removing it removes a filter from every
producer in it and an input slice from every consumer.

Ids that must survive are *frozen*, with a reason: model inputs and outputs,
the inputs and outputs of layers without a rule (which are kept whole),
excluded layers. A frozen id freezes its whole class.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from math import prod

import keras
import numpy as np

from edgepipe.prune.rules import Rule, rule_for, unknown
from edgepipe.prune.walk import graph_of, is_graph_model, leaf_layers, nested_models
from edgepipe.prune.walk import nodes_in_order, require_graph


class UnionFind:
    """Disjoint sets over channel ids."""

    def __init__(self) -> None:
        self._parent: list[int] = []

    def __len__(self) -> int:
        return len(self._parent)

    def new(self, count: int) -> np.ndarray:
        start = len(self._parent)
        self._parent.extend(range(start, start + count))
        return np.arange(start, start + count)

    def find(self, i: int) -> int:
        parent = self._parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(a.tolist(), b.tolist()):
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self._parent[max(rx, ry)] = min(rx, ry)

    def roots(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(len(self._parent))], dtype=np.int64)


@dataclass
class TracedCall:
    """One call of a leaf layer with the channel ids of its inputs and outputs."""

    path: str
    op: object
    rule: Rule
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]

    def vector(self, name: str) -> np.ndarray:
        """The ids along a weight axis: "in", "out" or "mid" (see rules)."""
        if name == "out":
            return self.outputs[0]
        if name == "mid":
            return np.repeat(self.inputs[0], self.rule.repeat)
        return self.inputs[0]


class _Unsupported(Exception):
    """A call that its rule cannot handle after all; it is kept whole."""


def _width(shape: tuple) -> int | None:
    return shape[-1] if len(shape) >= 2 and shape[-1] is not None else None


class DependencyGraph:
    """Channel ids of every tensor, the classes of coupled ids, and what is frozen."""

    def __init__(self, model: keras.Model):
        graph = require_graph(model)
        self.model = model
        self.uf = UnionFind()
        self.calls: list[TracedCall] = []
        self.unknown: dict[str, str] = {}
        self.output_paths: list[str] = []
        self.nested_inputs: dict[str, list[np.ndarray]] = {}
        self._frozen: dict[int, str] = {}
        self._layer_ids: dict[int, np.ndarray] = {}
        inputs = [self._fresh(tuple(t.shape), "model input") for t in graph.inputs]
        for vec, path in self._trace(graph, inputs, ""):
            self.freeze(vec, f"model output (produced by {path})")
            self.output_paths.append(path)
        self._couple_shared_calls()

    # -- public queries -------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        """Names settings may refer to: leaf layer paths and nested model paths."""
        return [*leaf_layers(self.model), *nested_models(self.model)]

    def first_calls(self) -> list[TracedCall]:
        """One call per layer (shared layers were coupled across calls)."""
        first: dict[str, TracedCall] = {}
        for call in self.calls:
            first.setdefault(call.path, call)
        return list(first.values())

    def freeze(self, vec: np.ndarray, reason: str) -> None:
        for i in vec.tolist():
            self._frozen.setdefault(i, reason)

    def exclude(self, name: str, reason: str) -> None:
        """Keep the output channels of layer ``name`` (or of every layer inside it)."""
        for call in self.calls:
            if call.path == name or call.path.startswith(name + "/"):
                for vec in call.outputs:
                    self.freeze(vec, reason)

    def roots(self) -> np.ndarray:
        """Root id of every id: equal roots are one prunable unit."""
        return self.uf.roots()

    def frozen_roots(self, roots: np.ndarray) -> dict[int, str]:
        reasons: dict[int, str] = {}
        for i, reason in self._frozen.items():
            reasons.setdefault(int(roots[i]), reason)
        return reasons

    # -- tracing ----------------------------------------------------------
    def _fresh(self, shape: tuple, frozen: str | None = None) -> np.ndarray:
        vec = self.uf.new(_width(shape) or 0)
        if frozen:
            self.freeze(vec, frozen)
        return vec

    def _trace(self, graph, inputs: list[np.ndarray], prefix: str) -> list[tuple]:
        """Propagate ids through ``graph``; returns (ids, producing path) per output."""
        known = {id(t): (v, "input") for t, v in zip(graph.inputs, inputs)}
        for node in nodes_in_order(graph):
            if any(id(t) not in known for t in node.input_tensors):
                continue
            ins = [known[id(t)][0] for t in node.input_tensors]
            op, path = node.operation, prefix + node.operation.name
            if is_graph_model(op):
                self.nested_inputs.setdefault(path, ins)
                outs = self._trace(graph_of(op), ins, path + "/")
            else:
                outs = [(v, path) for v in self._trace_call(path, op, node, ins)]
            known.update((id(t), o) for t, o in zip(node.outputs, outs))
        return [known[id(t)] for t in graph.outputs]

    def _trace_call(self, path: str, op, node, ins: list[np.ndarray]) -> list[np.ndarray]:
        in_shapes = tuple(tuple(t.shape) for t in node.input_tensors)
        out_shapes = tuple(tuple(t.shape) for t in node.outputs)
        args = node.arguments
        tensors_only = not args.kwargs and all(isinstance(a, keras.KerasTensor) for a in args.args)
        rule = rule_for(op, in_shapes, tensors_only)
        if any(_width(s) is None for s in in_shapes + out_shapes) or not in_shapes:
            rule = unknown("a tensor without a static channel axis")
        try:
            outs = self._apply(rule, op, ins, in_shapes, out_shapes, path)
            widths = [_width(s) for s in out_shapes]
            if rule.kind != "unknown" and [len(v) for v in outs] != widths:
                raise _Unsupported(f"output widths {out_shapes} do not follow its rule")
        except _Unsupported as exc:
            rule = unknown(str(exc))
            outs = self._apply(rule, op, ins, in_shapes, out_shapes, path)
        self.calls.append(TracedCall(path, op, rule, ins, outs))
        return outs

    def _apply(self, rule: Rule, op, ins, in_shapes, out_shapes, path) -> list[np.ndarray]:
        kind = rule.kind
        if kind == "unknown":
            return self._keep_whole(path, ins, out_shapes, rule.reason)
        if kind in ("merge", "concat"):
            return [self._merge(ins) if kind == "merge" else np.concatenate(ins)]
        if len(ins) != 1:
            raise _Unsupported(f"{len(ins)} inputs where one was expected")
        if kind == "producer":
            return [self._producer_ids(op, out_shapes[0], path, rule.out_frozen)]
        if kind == "depthwise":
            return [np.repeat(ins[0], rule.repeat)]
        if kind == "flatten":
            return [_reshape_ids(ins[0], in_shapes[0], (None, prod(in_shapes[0][1:])))]
        if kind == "reshape":
            return [_reshape_ids(ins[0], in_shapes[0], out_shapes[0])]
        return [ins[0]]  # passthrough, channelwise

    def _keep_whole(self, path, ins, out_shapes, reason) -> list[np.ndarray]:
        self.unknown.setdefault(path, reason)
        for vec in ins:
            self.freeze(vec, f"input of {path}, kept whole: {reason}")
        return [self._fresh(s, f"output of {path}, kept whole: {reason}") for s in out_shapes]

    def _merge(self, ins: list[np.ndarray]) -> np.ndarray:
        """Unite the inputs position by position; a one-channel input broadcasts.

        ``x * gate`` with a gate of one channel (spatial attention, a scalar
        scale) computes ``out[..., c] = x[..., c] * gate[..., 0]`` for every c:
        channel c of the output depends on channel c of the wide inputs and on
        the gate alone, so removing it touches no other channel and the gate
        is left as it is (it is not united with anything)."""
        wide = [v for v in ins if len(v) != 1] or ins
        if len({len(v) for v in wide}) != 1:
            raise _Unsupported("inputs of different widths (broadcasting)")
        for vec in wide[1:]:
            self.uf.union(wide[0], vec)
        return wide[0]

    def _producer_ids(self, op, shape, path, out_frozen) -> np.ndarray:
        """Fresh output ids, the same for every call of a shared layer."""
        if id(op) not in self._layer_ids:
            self._layer_ids[id(op)] = self._fresh(shape)
        ids = self._layer_ids[id(op)]
        if out_frozen:
            self.freeze(ids, f"output of {path}: {out_frozen}")
        return ids

    def _couple_shared_calls(self) -> None:
        """A layer called twice reads both inputs with the same weights: unite them."""
        by_layer: dict[int, list[TracedCall]] = defaultdict(list)
        for call in self.calls:
            if call.rule.weights:
                by_layer[id(call.op)].append(call)
        for calls in by_layer.values():
            for other in calls[1:]:
                for a, b in zip(calls[0].inputs, other.inputs):
                    if len(a) == len(b):
                        self.uf.union(a, b)
                    else:
                        self.freeze(np.concatenate([a, b]), f"{other.path}: shared, widths differ")


def _reshape_ids(ids: np.ndarray, in_shape: tuple, out_shape: tuple) -> np.ndarray:
    """Ids along the last axis after a reshape, if each position still holds one channel."""
    if any(d is None for d in in_shape[1:] + out_shape[1:]):
        raise _Unsupported("reshape with unknown dimensions")
    full = np.broadcast_to(ids, in_shape[1:]).reshape(-1, out_shape[-1])
    if not (full == full[0]).all():
        raise _Unsupported(f"reshape {in_shape} -> {out_shape} moves channels off the last axis")
    return full[0].copy()
