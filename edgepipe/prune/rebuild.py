"""Building the narrower model: new layers from edited configs, sliced weights.

The copy is made with ``keras.models.clone_model`` so it keeps the model's
class (Functional or Sequential), its layer names, its input names and its
nested models. Each changed layer is re-created from its config with the new
width; every other layer is re-created unchanged, and all weights are copied,
sliced along the axes its rule names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from edgepipe.prune.errors import RebuildError
from edgepipe.prune.graph import DependencyGraph, TracedCall
from edgepipe.prune.rules import Spec
from edgepipe.prune.walk import is_graph_model, leaf_layers


@dataclass(frozen=True)
class LayerPlan:
    """What happens to one layer: kept positions per channel vector, config edits."""

    spec: Spec
    keep: dict[str, np.ndarray]
    config: dict

    def kept_indices(self) -> dict[str, tuple[int, ...]]:
        return {v: tuple(np.flatnonzero(mask).tolist()) for v, mask in self.keep.items()}

    def slice(self, name: str, value: np.ndarray) -> np.ndarray:
        for axis, vector in self.spec.get(name, ()):
            mask = self.keep[vector]
            if value.shape[axis] == len(mask):
                value = np.take(value, np.flatnonzero(mask), axis=axis)
        return value



def kept_indices(plans: dict[str, LayerPlan]) -> dict[str, dict[str, tuple[int, ...]]]:
    """Per layer path, the original positions kept per channel vector (``PruneResult.kept_indices``)."""
    return {path: plan.kept_indices() for path, plan in plans.items()}

def plan_layers(graph: DependencyGraph, keep_id: np.ndarray) -> dict[str, LayerPlan]:
    """A plan for every layer whose weights or config change."""
    plans: dict[str, LayerPlan] = {}
    for call in graph.first_calls():
        if not call.rule.weights and call.rule.kind != "reshape":
            continue
        keep = {v: keep_id[call.vector(v)] for v in ("in", "mid", "out")}
        config = _config_edits(call, keep["out"])
        if config or not all(mask.all() for mask in keep.values()):
            plans[call.path] = LayerPlan(call.rule.weights, keep, config)
    return plans


def plan_inputs(graph: DependencyGraph, keep_id: np.ndarray) -> dict[str, list[int]]:
    """Input widths of nested models: they follow the tensors they are called on."""
    return {
        path: [int(keep_id[vec].sum()) for vec in vectors]
        for path, vectors in graph.nested_inputs.items()
    }


def _config_edits(call: TracedCall, keep_out: np.ndarray) -> dict:
    kept, key = int(keep_out.sum()), call.rule.config_key
    if keep_out.all() or key is None:
        return {}
    if key == "target_shape":
        shape = list(call.op.target_shape)
        return {key: shape[:-1] + [kept]} if shape[-1] != -1 else {}
    return {key: kept}


def rebuild(
    model: keras.Model, plans: dict[str, LayerPlan], input_widths: dict[str, list[int]] | None = None
) -> keras.Model:
    """A new model with the plans applied and every weight copied or sliced."""
    make = lambda path, layer: _make_layer(path, layer, plans.get(path))  # noqa: E731
    new = _clone(model, make, "", input_widths or {})
    fresh_layers = leaf_layers(new)
    for path, old in leaf_layers(model).items():
        fresh = fresh_layers.get(path)
        if fresh is None or fresh is old:
            continue
        plan = plans.get(path)
        values = [np.asarray(w.numpy()) for w in old.weights]
        if plan is not None:
            values = [plan.slice(w.name, v) for w, v in zip(old.weights, values)]
        fresh.set_weights(values)
    return new


def _make_layer(path: str, layer: keras.layers.Layer, plan: LayerPlan | None):
    config = layer.get_config()
    if plan is not None:
        config.update(plan.config)
    try:
        return type(layer).from_config(config)
    except Exception as exc:  # any failure of user code in from_config
        if plan is None and not layer.weights:
            return layer  # stateless (e.g. a Lambda): sharing the instance is harmless
        raise RebuildError(path, type(layer).__name__, exc) from exc


def _clone(model: keras.Model, make: Callable, path: str, widths: dict) -> keras.Model:
    """clone_model, recursing into nested models and keeping input names.

    A nested model gets inputs as wide as the (pruned) tensors it is called on."""
    prefix = path + "/" if path else ""

    def clone_op(op):
        if not isinstance(op, keras.layers.Layer):
            return op  # a stateless keras op (x + y in a functional model)
        if is_graph_model(op):
            return _clone(op, make, prefix + op.name, widths)
        return make(prefix + op.name, op)

    given_widths = widths.get(path) or [None] * len(model.inputs)
    inputs = [_input_like(t, w) for t, w in zip(model.inputs, given_widths)]
    if isinstance(model, keras.Sequential):
        given = inputs[0] if path in widths else None
        return keras.models.clone_model(model, input_tensors=given, clone_function=clone_op)
    inputs = keras.tree.pack_sequence_as(model.input, inputs)
    return keras.models.clone_model(model, input_tensors=inputs, clone_function=clone_op)


def _input_like(tensor, width: int | None) -> keras.KerasTensor:
    shape = tuple(tensor.shape) if width is None else (*tensor.shape[:-1], width)
    name = tensor._keras_history[0].name
    return keras.Input(batch_shape=shape, dtype=tensor.dtype, name=name)
