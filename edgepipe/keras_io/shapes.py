"""Fixed input shapes for models with dynamic dimensions.

A fully-convolutional model takes ``None×None`` images and an audio model an
unknown number of frames; a device and the int8 converter need every
dimension fixed. :func:`dynamic_inputs` says which inputs need a shape, and
:func:`with_fixed_inputs` returns the same model (the same layers, so the
same weights) on inputs of the given shapes.
"""

from __future__ import annotations

import numbers

from edgepipe.errors import InputError
from edgepipe.keras_io.messages import keras_reason


def dynamic_inputs(model) -> dict[str, tuple]:
    """``{input name: per-sample shape}`` of each input with an unknown dimension besides batch."""
    from edgepipe.keras_io.names import input_names

    return {name: tuple(t.shape[1:]) for t, name in zip(model.inputs, input_names(model))
            if any(d is None for d in t.shape[1:])}


def with_fixed_inputs(model, shapes: dict[str, tuple[int, ...]]):
    """``model`` on inputs with the given per-sample shapes (batch excluded), by input name.

    Inputs not named keep their shape. The layers are shared, not copied, so
    the result computes exactly what ``model`` computes on those shapes.
    Refuses an unknown name, a shape of the wrong rank, or one that changes a
    dimension the model fixes.
    """
    import keras

    from edgepipe.keras_io.names import input_names

    tensors = dict(zip(input_names(model), model.inputs))
    for name, shape in shapes.items():
        _check(model, name, tensors.get(name), shape)
    new = {id(t): keras.Input(shape=tuple(int(d) if d else d for d in shapes.get(name, t.shape[1:])), dtype=t.dtype,
                              name=name)
           for name, t in tensors.items()}
    try:
        return _rebuild(model, new)
    except Exception as exc:  # noqa: BLE001 - a layer refusing the shape raises its own type
        raise InputError(f"model {model.name!r}", f"inputs it can run on ({_show_all(shapes)})",
                         keras_reason(exc),
                         "give each input the shape the model was trained on") from None


def _check(model, name: str, tensor, shape) -> None:
    """Refuse a shape that names no input, has another rank, or contradicts a fixed dimension."""
    where = f"model {model.name!r}: input {name!r}"
    if tensor is None:
        from edgepipe.keras_io.names import input_names

        raise InputError(where, f"one of the model's inputs {input_names(model)}", "no input of that name")
    own = tuple(tensor.shape[1:])
    shape = tuple(shape)
    if len(shape) != len(own) or not all(isinstance(d, numbers.Integral) and d > 0 for d in shape):
        raise InputError(where, f"a per-sample shape of {len(own)} positive sizes, like {_show(own)}",
                         f"{_show(shape)}", "leave out the batch dimension")
    clash = [i for i, (d, g) in enumerate(zip(own, shape)) if d is not None and d != g]
    if clash:
        raise InputError(where, f"a shape that keeps the model's fixed sizes {_show(own)}",
                         f"{_show(shape)} (axis {clash[0] + 1} differs)")


def _rebuild(model, new: dict):
    """Run the model's own layers on the new inputs (``{id(old input): new input}``), a flat graph where it has one."""
    import keras

    if isinstance(model, keras.Sequential):
        x = inp = next(iter(new.values()))
        for layer in model.layers:
            x = layer(x)
        return keras.Model(inp, x, name=model.name)
    inputs = keras.tree.map_structure(lambda t: new[id(t)], model.input)
    if hasattr(model, "_run_through_graph"):  # a Functional model: its own graph, its layers shared
        return keras.models.clone_model(model, input_tensors=inputs, clone_function=lambda layer: layer)
    return keras.Model(inputs, model(inputs), name=model.name)


def _show(dims) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def _show_all(shapes: dict) -> str:
    return ", ".join(f"{k}: {_show(v)}" for k, v in shapes.items()) or "their own shapes"

