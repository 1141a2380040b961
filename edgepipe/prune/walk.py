"""Reading the layer graph of a Keras 3 Functional or Sequential model.

Keras keeps the graph as nodes (one per layer call) grouped by depth; this is
the same walk ``Functional._run_through_graph`` does. Nested graph models
(a ``keras.Model`` used as a layer) are walked through, and their layers are
named by path (``"block1/conv"``) because inner names may repeat outer ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from math import prod

import keras

from edgepipe.errors import InputError
from edgepipe.prune.errors import UntraceableModelError


def graph_of(model: keras.Model):
    """The Functional graph behind ``model``, or None for a subclassed model."""
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    if hasattr(model, "_nodes_by_depth") and hasattr(model, "_run_through_graph"):
        return model
    return None


def require_graph(model: keras.Model):
    """Like :func:`graph_of` but a model without a graph is a user error."""
    graph = graph_of(model)
    if graph is not None:
        return graph
    if isinstance(model, keras.Sequential):
        raise InputError(
            f"model {model.name!r}",
            "a built Sequential model",
            "one without input shape",
            fix="start it with keras.Input(shape) or call model.build(shape)",
        )
    raise UntraceableModelError(model.name, type(model).__name__)


def is_graph_model(op) -> bool:
    """A nested model whose layers can be walked (Functional or built Sequential)."""
    return isinstance(op, keras.Model) and graph_of(op) is not None


def nodes_in_order(graph) -> Iterator:
    """Non-input nodes, producers before consumers."""
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            if node.operation is not None and not node.is_input:
                yield node


@dataclass(frozen=True)
class Call:
    """One call of a leaf layer (or keras op), with its symbolic shapes."""

    path: str
    op: object
    in_shapes: tuple[tuple, ...]
    out_shapes: tuple[tuple, ...]


def elements(shape: tuple) -> int:
    """Elements of one sample of a tensor of ``shape`` (the batch axis is left out; unknown axes count 1)."""
    return prod(d or 1 for d in shape[1:])


def iter_calls(model: keras.Model, prefix: str = "") -> Iterator[Call]:
    """Every leaf call in topological order, nested models flattened."""
    for node in nodes_in_order(require_graph(model)):
        op = node.operation
        path = prefix + op.name
        if is_graph_model(op):
            yield from iter_calls(op, path + "/")
            continue
        yield Call(
            path,
            op,
            tuple(tuple(t.shape) for t in node.input_tensors),
            tuple(tuple(t.shape) for t in node.outputs),
        )


def leaf_layers(model: keras.Model, prefix: str = "") -> dict[str, keras.layers.Layer]:
    """Path -> layer for every layer that is not itself a graph model."""
    found: dict[str, keras.layers.Layer] = {}
    for layer in model.layers:
        path = prefix + layer.name
        if is_graph_model(layer):
            found.update(leaf_layers(layer, path + "/"))
        else:
            found[path] = layer
    return found


def nested_models(model: keras.Model, prefix: str = "") -> list[str]:
    """Paths of the graph models nested in ``model`` (they may be named in settings)."""
    paths: list[str] = []
    for layer in model.layers:
        if is_graph_model(layer):
            paths.append(prefix + layer.name)
            paths.extend(nested_models(layer, prefix + layer.name + "/"))
    return paths
