"""Keras-2-era HDF5 files rebuilt with Keras 3: translate the saved config, then load the weights.

Keras 3 reads a Keras 2 ``.h5`` with the same per-layer machinery used here
(``keras.Model.from_config`` on the ``model_config`` JSON, then the legacy
weight loader), but stops at keys Keras 2 wrote and Keras 3 does not accept
(``groups`` on DepthwiseConv2D in MLPerf Tiny's visual wake words model),
and silently misreads a few (a first Sequential layer's ``batch_input_shape``
becomes an extra ``None`` axis). :data:`FIXES` (per key) and :data:`STRUCTURE`
(whole-model rewrites) are the one place those are translated, each with why;
what cannot be translated is refused by layer name. Weights are read from the
same file by layer order, as Keras 2 wrote them.

What Keras 3 cannot rebuild (TFOpLambda layers) runs in Keras 2 itself when
``tf_keras`` is installed (``pip install 'edgepipe[legacy]'``), as one opaque
layer. Nothing in the file is executed: ``Lambda`` layers (Python bytecode)
are refused either way.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgepipe.errors import InputError
from edgepipe.keras_io.messages import keras_reason

RESAVE = "load it with Keras 2 (tf_keras) and re-save it with Keras 3, or export a SavedModel folder"


class Untranslatable(Exception):
    """A Keras 2 config value that has no Keras 3 equivalent (becomes an InputError naming the layer)."""


@dataclass(frozen=True)
class Fix:
    """One Keras 2 → Keras 3 config translation: ``apply(config, key)`` edits a layer's config in place."""

    applies: Callable[[str], bool]   # to a class name
    key: str                         # the config key it looks at (only when present)
    apply: Callable[[dict, str], None]
    why: str


def _only(*names: str) -> Callable[[str], bool]:
    return frozenset(names).__contains__


def _all_but(*names: str) -> Callable[[str], bool]:
    return lambda class_name: class_name not in names


_ANY = _all_but()


def _drop_if(*defaults) -> Callable[[dict, str], None]:
    """Drop ``key`` when it has a value that means "off" in Keras 2; any other value has no Keras 3 form."""
    def apply(cfg: dict, key: str) -> None:
        if cfg[key] not in defaults:
            raise Untranslatable(f"{key}={cfg[key]!r} (Keras 3 supports only {defaults[0]!r})")
        del cfg[key]
    return apply


def _drop(cfg: dict, key: str) -> None:
    del cfg[key]


def _rename(new: str) -> Callable[[dict, str], None]:
    def apply(cfg: dict, key: str) -> None:
        cfg[new] = cfg.pop(key)
    return apply


def _policy_name(cfg: dict, key: str) -> None:
    policy = cfg[key]
    if isinstance(policy, dict) and policy.get("class_name") in ("Policy", "PolicyV1"):
        cfg[key] = policy["config"]["name"]


def _with_module(cfg: dict, key: str) -> None:
    nested = cfg[key]
    if isinstance(nested, dict) and "module" not in nested:
        nested.update(module="keras.layers", registered_name=None)


def _refuse(reason: str) -> Callable[[dict, str], None]:
    def apply(cfg: dict, key: str) -> None:
        raise Untranslatable(reason)
    return apply


_CONVS_WITHOUT_GROUPS = _only("DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
                              "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
_SEPARABLE = _only("SeparableConv1D", "SeparableConv2D")
_SPATIAL_DROPOUT = _only("SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D")
_RNNS = _only("LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
_WRAPPERS = _only("Bidirectional", "TimeDistributed")
_BN = _only("BatchNormalization")

FIXES: tuple[Fix, ...] = (
    Fix(_CONVS_WITHOUT_GROUPS, "groups", _drop_if(1),
        "Keras 2 wrote its Conv base class's `groups` into every conv subclass; Keras 3 takes it on Conv1D/2D/3D only"),
    Fix(_SEPARABLE, "kernel_initializer", _drop,
        "Keras 2 wrote its Conv base class's unused kernel_* settings into separable convs (which use "
        "depthwise_/pointwise_ ones)"),
    Fix(_SEPARABLE, "kernel_regularizer", _drop,
        "the separable convs' unused kernel_regularizer, as kernel_initializer"),
    Fix(_SEPARABLE, "kernel_constraint", _drop,
        "the separable convs' unused kernel_constraint, as kernel_initializer"),
    Fix(_only("InputLayer"), "batch_input_shape", _rename("batch_shape"),
        "Keras 3 names an InputLayer's full shape `batch_shape`"),
    Fix(_only("InputLayer"), "ragged", _drop_if(False, None),
        "Keras 3 has no ragged tensors; Keras 2 wrote ragged=False on every InputLayer"),
    Fix(_all_but("InputLayer"), "batch_input_shape", _drop,
        "Keras 3 reads it as a per-sample shape (an extra None axis); a Sequential's first one became an InputLayer"),
    Fix(_ANY, "dtype", _policy_name,
        "Keras 2 saved mixed-precision policies as {class_name: Policy}, a class Keras 3 does not have; "
        "the name is enough"),
    Fix(_BN, "virtual_batch_size", _drop_if(None),
        "ghost batch norm does not exist in Keras 3 (Keras 2 wrote the key only when it was set)"),
    Fix(_SPATIAL_DROPOUT, "trainable", _drop,
        "Keras 3's SpatialDropout constructors take no `trainable` (a weightless layer); Keras 2 wrote it"),
    Fix(_SPATIAL_DROPOUT, "noise_shape", _drop_if(None),
        "inherited from Keras 2's Dropout config; a spatial dropout always makes its own noise shape"),
    Fix(_RNNS, "time_major", _drop_if(False),
        "Keras 3 RNNs are always batch-major; Keras 2 wrote time_major=False on every RNN"),
    Fix(_WRAPPERS, "layer", _with_module,
        "Keras 3 wrappers read their inner layer with the new deserializer, which needs a `module`"),
    Fix(_WRAPPERS, "backward_layer", _with_module,
        "a Bidirectional's own backward layer is read like its `layer`"),
    Fix(_only("TFOpLambda", "SlicingOpLambda"), "function",
        _refuse("a raw TensorFlow op called on a Keras 2 tensor (TFOpLambda); Keras 3 has no such layer"),
        "Keras 2 recorded `x * 2` or `tf.nn.relu6(x)` on Keras tensors as TFOpLambda layers; "
        "Keras 3 cannot rebuild them"),
    Fix(_only("Lambda"), "function",
        _refuse("a Lambda layer (saved Python bytecode, which edgepipe does not execute)"),
        "running bytecode from a model file is running the file's author's code"),
)


def translate(config: dict) -> dict:
    """A copy of a Keras 2 ``model_config`` that Keras 3's ``from_config`` rebuilds as Keras 2 did.

    The whole-model rewrites of :data:`STRUCTURE` first, then :data:`FIXES` on every
    object. Raises :class:`Untranslatable` with the layer's name when a value has no Keras 3 form.
    """
    config = copy.deepcopy(config)
    for rewrite, _why in STRUCTURE:
        rewrite(config)
    for obj in _objects(config):
        if isinstance(obj["config"], dict):
            _apply(obj["class_name"], obj["config"])
    return config


def _objects(tree) -> list[dict]:
    """Every ``{class_name, config}`` object in a config (layers, models, initializers), outermost first.

    ``config`` is a dict, or a list for a Sequential saved by Keras <= 2.2.
    """
    found, stack = [], [tree]
    while stack:
        obj = stack.pop()
        if isinstance(obj, list):
            stack.extend(reversed(obj))
        elif isinstance(obj, dict):
            if isinstance(obj.get("class_name"), str) and isinstance(obj.get("config"), (dict, list)):
                found.append(obj)
            stack.extend(reversed(list(obj.values())))
    return found


def _apply(class_name: str, cfg: dict) -> None:
    for fix in FIXES:
        if fix.key in cfg and fix.applies(class_name):
            try:
                fix.apply(cfg, fix.key)
            except Untranslatable as exc:
                raise Untranslatable(f"layer {cfg.get('name', '?')!r} ({class_name}): {exc}") from None


def _sequential_inputs(config: dict) -> None:
    """Give each Sequential saved as a bare list, or without an InputLayer, Keras 3's form (see STRUCTURE)."""
    for seq in _objects(config):
        if seq.get("class_name") != "Sequential":
            continue
        if isinstance(seq.get("config"), list):
            seq["config"] = {"name": "sequential", "layers": seq["config"]}
        layers = seq.get("config", {}).get("layers") or []
        first = layers[0].get("config", {}) if layers and layers[0].get("class_name") != "InputLayer" else {}
        if "batch_input_shape" in first:
            layers.insert(0, {"class_name": "InputLayer", "config": {
                "batch_shape": first["batch_input_shape"], "dtype": first.get("dtype", "float32"),
                "name": f"{first.get('name', 'layer')}_input"}})


def _shift_nested_model_nodes(config: dict) -> None:
    """Renumber the calls of nested models from 0 (see STRUCTURE), in every functional model of the config."""
    for model_cfg in [o["config"] for o in _objects(config) if isinstance(o["config"], dict)]:
        if not isinstance(model_cfg.get("layers"), list):
            continue
        nested = {layer["config"]["name"] for layer in model_cfg["layers"] if _starts_with_own_node(layer)}
        refs = [ref for layer in model_cfg["layers"] for node in layer.get("inbound_nodes", []) for ref in _refs(node)]
        refs += [ref for key in ("input_layers", "output_layers") for ref in _refs(model_cfg.get(key))]
        for ref in refs:
            if ref[0] in nested:
                if ref[1] < 1:
                    raise Untranslatable(f"a call of nested model {ref[0]!r} numbered {ref[1]} (Keras 2 started at 1)")
                ref[1] -= 1


def _refs(node) -> list:
    """The ``[layer, node index, tensor index, ...]`` references in a node: a list of them, or one alone
    (Keras 2 wrote TFOpLambda nodes, and one-input models' input_layers, unwrapped)."""
    if not isinstance(node, list) or not node:
        return []
    if isinstance(node[0], str):
        return [node]
    return [ref for ref in node if isinstance(ref, list) and ref and isinstance(ref[0], str)]


def _starts_with_own_node(layer: dict) -> bool:
    """Keras 2's ``_should_skip_first_node``: a nested model that was built on its own Input."""
    cls, cfg = layer.get("class_name"), layer.get("config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
        return False
    if cls in ("Functional", "Model"):
        return True
    first = cfg["layers"][0] if cfg["layers"] else {}
    return cls == "Sequential" and first.get("class_name") == "InputLayer"


STRUCTURE: tuple[tuple[Callable[[dict], None], str], ...] = (
    (_sequential_inputs,
     "Keras <= 2.2 saved a Sequential as a bare layer list with batch_input_shape on its first layer; Keras 3 wants "
     "{name, layers} and an InputLayer (named <layer>_input, as Keras 2 named the implicit one)"),
    (_shift_nested_model_nodes,
     "Keras 2 numbered a nested model's calls from 1 (node 0 was its own input-to-output node); Keras 3 from 0, "
     "so a shared nested model's second call would point at a node that does not exist"),
)


def keras2_config(path: Path) -> dict | None:
    """The ``model_config`` of an HDF5 model file Keras 1 or 2 wrote; None for a Keras 3 file, weights only, not HDF5."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw, version = f.attrs.get("model_config"), f.attrs.get("keras_version", "")
    except OSError:
        return None
    version = version.decode() if isinstance(version, bytes) else str(version)
    if raw is None or version.startswith("3"):
        return None
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def load_keras2_h5(path: Path, config: dict):
    """The model of a Keras 2 ``.h5``: rebuilt in Keras 3 from its translated config, with the file's weights.

    What Keras 3 cannot rebuild (a TFOpLambda layer, an unknown key) runs in
    Keras 2 when ``tf_keras`` is installed, wrapped as one opaque layer.
    """
    where = f"{path} (a Keras 2 HDF5 file)"
    try:
        return _rebuild(path, config)
    except Untranslatable as exc:
        reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for configs it cannot rebuild
        reason = keras_reason(exc)
    if config.get("class_name") not in ("Functional", "Model", "Sequential"):
        raise InputError(where, "a Functional or Sequential model",
                         f"a subclassed model ({config.get('class_name')}), whose code is not in the file", RESAVE)
    if "Lambda" in _class_names(config):
        raise InputError(where, "layers Keras 3 can rebuild", reason, RESAVE)
    return _run_in_keras2(path, where, reason)


def _rebuild(path: Path, config: dict):
    import keras

    translated = translate(config)
    model_class = {"Functional": keras.Model, "Model": keras.Model, "Sequential": keras.Sequential}.get(
        translated.get("class_name"))
    if model_class is None:
        raise Untranslatable(f"a {translated.get('class_name')} model")
    model = model_class.from_config(translated["config"])
    model.load_weights(path)
    return model


def _run_in_keras2(path: Path, where: str, reason: str):
    """Load with ``tf_keras`` and wrap it (see :mod:`edgepipe.keras_io.signature`); no Lambda gets here."""
    from edgepipe.keras_io import import_tensorflow
    from edgepipe.keras_io.saved_model import LEGACY_EXTRA
    from edgepipe.keras_io.signature import as_keras_model, keras2_signature

    try:
        import tf_keras
    except ImportError:
        raise InputError(where, "layers Keras 3 can rebuild", reason,
                         f"{LEGACY_EXTRA} lets edgepipe run it with Keras 2; or {RESAVE}") from None
    tf = import_tensorflow()
    try:
        model = tf_keras.models.load_model(path, compile=False)
        sig = keras2_signature(model, tf)
    except Exception as exc:  # noqa: BLE001
        raise InputError(where, "a model Keras 3 or Keras 2 (tf_keras) can load",
                         f"{reason}; tf_keras: {keras_reason(exc)}", RESAVE) from None
    return as_keras_model(sig, path.stem, str(path))


def _class_names(obj) -> set:
    """Every ``class_name`` in a config, nested ones too."""
    if isinstance(obj, list):
        return set().union(*(_class_names(v) for v in obj)) if obj else set()
    if isinstance(obj, dict):
        own = {obj["class_name"]} if isinstance(obj.get("class_name"), str) else set()
        return own.union(*(_class_names(v) for v in obj.values()))
    return set()
