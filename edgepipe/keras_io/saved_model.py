"""A SavedModel folder as a Keras 3 model: its serving signature, called by a layer.

Keras 3 cannot load a SavedModel as a Keras model, so edgepipe wraps the
serving signature (:mod:`edgepipe.keras_io.signature`): one ``keras.Input``
per signature input, named by its key, and the outputs as a dict keyed by the
signature's output keys, so the names a config, the data and the ``.tflite``
use survive. Three loaders are tried in turn, because real SavedModels need
different ones:

1. ``tf.saved_model.load`` — every TF2 SavedModel without Keras 2 objects TF cannot revive.
2. the same with ``tf_keras`` imported — Keras 2 SavedModels that saved their
   optimizer (MLPerf Tiny's keyword spotting reference, TF 2.3) name Keras 2
   classes that only ``tf_keras`` registers (``pip install 'edgepipe[legacy]'``).
3. the graph only, as TF1 did: ``tf.compat.v1`` loads the signature's graph and
   variables in a session, skipping the Python object graph, and freezes the
   variables into constants — loads those Keras 2 files without ``tf_keras``.
   A TF1 SavedModel (no object graph) goes here directly: TF2's loader
   revives it, but with variables the TFLite converter cannot freeze.
"""

from __future__ import annotations

from pathlib import Path

from edgepipe.errors import InputError
from edgepipe.keras_io import import_tensorflow
from edgepipe.keras_io.messages import keras_reason
from edgepipe.keras_io.signature import Signature, as_keras_model

LEGACY_EXTRA = "pip install 'edgepipe[legacy]'"
_KERAS2_HINTS = ("add_slot", "_UserObject", "keras", "optimizer")


def load_saved_model(path: Path):
    """A ``keras.Model`` calling the folder's serving signature (see the module docstring)."""
    tf = import_tensorflow()
    tried = []
    for name, loader in (_LOADERS if _has_object_graph(path) else _LOADERS[-1:]):
        try:
            signature = loader(str(path), tf)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - TF raises many types for SavedModels it cannot revive
            tried.append(f"{name}: {keras_reason(exc, 160)}")
            continue
        return as_keras_model(signature, path.name or "saved_model", str(path))
    raise InputError(str(path), "a SavedModel TensorFlow can load", "; ".join(tried), _fix_for(tried))


def _load_tf2(path: str, tf) -> Signature:
    loaded = tf.saved_model.load(path)
    fn = _pick(dict(loaded.signatures), path)
    return Signature(fn.structured_input_signature[1], fn, loaded, list(fn.variables))


def _load_with_tf_keras(path: str, tf) -> Signature:
    """Importing tf_keras registers the Keras 2 classes (optimizers, layers) the object graph names."""
    try:
        import tf_keras  # noqa: F401 - imported for its registrations
    except ImportError:
        raise ImportError("tf_keras is not installed") from None
    return _load_tf2(path, tf)


def _load_graph_only(path: str, tf) -> Signature:
    """The serving signature's graph with its variables frozen to constants (TF1-style loading)."""
    sig, frozen, values = _freeze(path, tf)
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(frozen, name=""), [])
    keys, outs = sorted(sig.inputs), {}
    for k in sorted(sig.outputs):
        outs[k] = wrapped.graph.as_graph_element(sig.outputs[k].name)
        outs[k].set_shape(tf.TensorShape(sig.outputs[k].tensor_shape))  # the imported graph may not know it
    pruned = wrapped.prune([wrapped.graph.as_graph_element(sig.inputs[k].name) for k in keys], outs)
    specs = {k: tf.TensorSpec(tf.TensorShape(sig.inputs[k].tensor_shape), tf.as_dtype(sig.inputs[k].dtype), k)
             for k in keys}
    return Signature(specs, lambda **feed: pruned(*[feed[k] for k in keys]), wrapped, values)


def _freeze(path: str, tf):
    """(the serving SignatureDef, its graph with variables as constants, the variables' values) via a v1 session."""
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as sess:
        meta = v1.saved_model.loader.load(sess, [tf.saved_model.SERVING], path)
        sig = _pick(dict(meta.signature_def), path)
        fetches = sorted({t.name.split(":")[0] for t in sig.outputs.values()})
        frozen = v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), fetches)
        return sig, frozen, _used_variable_values(sess, graph, fetches, v1)


def _used_variable_values(sess, graph, fetches: list[str], v1) -> list:
    """Values of the variables the outputs read (not the optimizer's slots, which the file also holds)."""
    reads = []
    with graph.as_default():
        for node in v1.graph_util.extract_sub_graph(graph.as_graph_def(), fetches).node:
            out = graph.get_tensor_by_name(node.name + ":0") if node.op in _VARIABLE_OPS else None
            if node.op == "VarHandleOp":
                out = v1.raw_ops.ReadVariableOp(resource=out, dtype=node.attr["dtype"].type)
            if out is not None:
                reads.append(out)
    return sess.run(reads) if reads else []


_VARIABLE_OPS = ("VarHandleOp", "VariableV2", "Variable")


def _has_object_graph(path: Path) -> bool:
    """False for a TF1 SavedModel: TF's own loader revives it, but leaves variables the converter cannot freeze."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((path / "saved_model.pb").read_bytes())
    except Exception:  # noqa: BLE001 - a damaged file: let the loaders say what is wrong
        return True
    return not proto.meta_graphs or any(len(m.object_graph_def.nodes) for m in proto.meta_graphs)


_LOADERS = (("tf.saved_model.load", _load_tf2), ("with tf_keras", _load_with_tf_keras),
            ("graph only (tf.compat.v1 session)", _load_graph_only))


def _pick(signatures: dict, path: str):
    """``serving_default``, or the only signature there is."""
    sigs = {k: v for k, v in signatures.items() if not k.startswith("__")}
    if "serving_default" in sigs:
        return sigs["serving_default"]
    if len(sigs) == 1:
        return next(iter(sigs.values()))
    raise InputError(path, "a SavedModel with a 'serving_default' signature",
                     f"signatures {sorted(sigs)}" if sigs else "no signatures",
                     "export it with Keras 3's model.export(path), which writes 'serving_default'")


def _fix_for(tried: list[str]) -> str:
    no_tf_keras = any("tf_keras is not installed" in t for t in tried)
    if no_tf_keras and any(h in tried[0] for h in _KERAS2_HINTS):
        return f"a Keras 2 SavedModel needs tf_keras to load: {LEGACY_EXTRA}"
    return "re-export it with Keras 3's model.export(path), or tf.saved_model.save with a serving signature"
