"""The names of a Keras model's inputs and outputs: how data, labels and the .tflite are matched to them.

The converter reorders inputs and outputs; edgepipe converts with the Keras
names as signature keys (see :mod:`edgepipe.keras_io.convert`), so these
names are the one link between a config's ``inputs:``/``outputs:``, the data
arrays and the ``.tflite`` tensors.
"""

from __future__ import annotations


def input_names(model) -> list[str]:
    """Input names in the model's input order (``keras.Input(name=...)``)."""
    return [t.name.split(":")[0] for t in model.inputs]


def output_names(model) -> list[str]:
    """Output names in the order of ``model.outputs``.

    A model built with a dict of outputs is named by its keys (Keras flattens
    them sorted); a list of outputs by the layers that make them.
    """
    struct = getattr(model, "output", None)
    if isinstance(struct, dict):
        return sorted(struct)
    names = list(getattr(model, "output_names", None) or [])
    return names if len(names) == len(model.outputs) else [f"output_{i}" for i in range(len(model.outputs))]


def named_outputs(model, out) -> dict:
    """What ``model`` returned (an array, a list or a dict), keyed by output name."""
    if isinstance(out, dict):
        return dict(out)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    return dict(zip(output_names(model), outs))


def describe(model) -> dict:
    """``{"inputs": [[name, shape]], "outputs": [[name, shape]]}``, shapes with the batch axis (None: unknown)."""
    def shapes(tensors, names):
        return [[n, [None if d is None else int(d) for d in t.shape]] for n, t in zip(names, tensors)]

    return {"inputs": shapes(model.inputs, input_names(model)), "outputs": shapes(model.outputs, output_names(model))}
