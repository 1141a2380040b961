"""A TensorFlow function as a Keras 3 model: SavedModel signatures and Keras 2 models Keras 3 cannot rebuild.

Keras 3 cannot load a SavedModel, nor run a Keras 2 model, as Keras layers;
edgepipe calls them from one layer inside a functional model instead, so
the rest of the pipeline (conversion, the float reference) sees a Keras model
with named inputs and a dict of named outputs. Such a model is opaque: it
converts and predicts, but cannot be pruned layer by layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from edgepipe.errors import InputError


@dataclass
class Signature:
    """What the Keras model needs of a function: its inputs by key, and how to call it."""

    inputs: dict          # key -> tf.TensorSpec
    call: Callable        # call(**tensors by key) -> dict of outputs by key
    owner: object         # keeps the loaded graph and its variables alive
    values: list          # the weights (arrays or variables), so the model counts its parameters


def as_keras_model(sig: Signature, name: str, where: str):
    """One Input per signature input (batch free), in key order, named by key; outputs a dict keyed by output key.

    Several inputs are a list, as ``model.inputs`` and edgepipe's data feed them; Keras also takes a dict by name.
    """
    import keras

    for key, spec in sig.inputs.items():
        if spec.shape.rank is None:
            raise InputError(f"{where}: input {key!r}", "a known rank", "an unknown shape",
                             "re-export the model with a fixed-rank input signature")
    inputs = [keras.Input(shape=tuple(sig.inputs[k].shape[1:]), dtype=sig.inputs[k].dtype.name, name=k)
              for k in sorted(sig.inputs)]
    outs = _signature_layer(sig, f"{name}_signature")(inputs if len(inputs) > 1 else inputs[0])
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], {k: outs[k] for k in sorted(outs)}, name=name)


def _signature_layer(sig: Signature, name: str):
    """A layer calling ``sig``; the class is made here so that Keras is imported only when needed."""
    import keras

    class SignatureLayer(keras.layers.Layer):
        """Calls a serving signature with keyword arguments and returns its dict of outputs.

        Its weights are copies of the signature's values, for counting parameters
        (as Keras' own ``TFSMLayer`` does); the signature computes with its own.
        """

        def __init__(self, **kwargs):
            super().__init__(trainable=False, **kwargs)
            self._sig = sig
            for i, value in enumerate(sig.values):
                self._track_variable(keras.Variable(value, trainable=False, name=f"value_{i}"))
            self.built = True

        def call(self, inputs):
            keys = sorted(self._sig.inputs)
            feed = dict(zip(keys, inputs if isinstance(inputs, (list, tuple)) else [inputs]))
            return dict(self._sig.call(**feed))

    return SignatureLayer(name=name)


def keras2_signature(model, tf) -> Signature:
    """A ``tf_keras`` model as a :class:`Signature`: inputs and outputs keyed by its own names, inference mode."""
    names, outs = list(model.input_names), list(model.output_names)
    specs = {n: tf.TensorSpec(t.shape, t.dtype, n) for n, t in zip(names, model.inputs)}

    def run(**feed):
        y = model([feed[n] for n in names] if len(names) > 1 else feed[names[0]], training=False)
        return dict(zip(outs, y if isinstance(y, (list, tuple)) else [y]))

    return Signature(specs, tf.function(run).get_concrete_function(**specs), model, list(model.weights))
