"""Who feeds whom in a flat functional Keras model: what equalization and bias correction walk.

Only layers called once are linked (a shared layer's weights serve several
inputs: scaling them for one would change the others); a layer whose output is
a model output has an extra, outside consumer, so it never has a single one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class LayerGraph:
    """``producers[name]``: the layers feeding it; ``consumers[name]``: the layers it feeds."""

    layers: dict = field(default_factory=dict)
    producers: dict = field(default_factory=lambda: defaultdict(list))
    consumers: dict = field(default_factory=lambda: defaultdict(list))
    order: list = field(default_factory=list)

    def single_consumer(self, name: str):
        """The one layer reading ``name``'s output, or None (several, none, or a model output)."""
        found = self.consumers.get(name, [])
        return self.layers.get(found[0]) if len(found) == 1 else None

    def only_input(self, name: str):
        """The one layer feeding ``name``, or None."""
        found = self.producers.get(name, [])
        return self.layers.get(found[0]) if len(found) == 1 else None


def layer_graph(model) -> LayerGraph | None:
    """The graph of ``model``, or None when it cannot be walked (subclassed or nested models)."""
    import keras

    from edgepipe.prune.walk import graph_of, nodes_in_order

    graph = graph_of(model)
    if graph is None or any(isinstance(layer, keras.Model) for layer in model.layers):
        return None
    g = LayerGraph()
    for node in nodes_in_order(graph):
        op = node.operation
        if len(getattr(op, "_inbound_nodes", [])) != 1:
            continue
        g.layers[op.name] = op
        g.order.append(op.name)
        for tensor in node.input_tensors:
            parent = tensor._keras_history.operation
            g.producers[op.name].append(parent.name)
            g.consumers[parent.name].append(op.name)
    for tensor in model.outputs:
        g.consumers[tensor._keras_history.operation.name].append("<model output>")
    return g
