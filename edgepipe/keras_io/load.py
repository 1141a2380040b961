"""Load a trained model: Keras 3 ``.keras``, legacy ``.h5``, or a SavedModel folder."""

from __future__ import annotations

from pathlib import Path

from edgepipe.keras_io import import_tensorflow
from edgepipe.errors import InputError

SUPPORTED = "a .keras file, a .h5 file or a SavedModel folder"


def load_keras_model(path: str | Path):
    """A ``keras.Model``; a SavedModel is wrapped in a functional model with a TFSMLayer."""
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), SUPPORTED, "no such file or folder")
    import_tensorflow()
    import keras

    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise InputError(str(path), SUPPORTED, "a folder without saved_model.pb")
        return _load_saved_model(path)
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise InputError(str(path), SUPPORTED, f"a {path.suffix or 'suffix-less'} file")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for bad files
        raise InputError(str(path), f"a loadable Keras model ({SUPPORTED})",
                         f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None


def _load_saved_model(path: Path):
    """Keras 3 cannot load SavedModels directly; wrap the serving signature."""
    import keras
    tf = import_tensorflow()

    try:
        loaded = tf.saved_model.load(str(path))
        fn = loaded.signatures["serving_default"]
    except Exception as exc:  # noqa: BLE001
        raise InputError(str(path), "a SavedModel with a 'serving_default' signature",
                         f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None
    specs = list(fn.structured_input_signature[1].values())
    if len(specs) != 1:
        raise InputError(str(path), "a SavedModel with one input", f"{len(specs)} inputs")
    inp = keras.Input(shape=tuple(specs[0].shape[1:]), name=specs[0].name)
    out = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")(inp)
    if isinstance(out, dict):
        if len(out) != 1:
            raise InputError(str(path), "a SavedModel with one output", f"outputs {sorted(out)}")
        out = next(iter(out.values()))
    return keras.Model(inp, out, name=path.name)


def model_io(model) -> tuple[tuple, int | None]:
    """(input shape with batch, number of outputs of the last axis) of a one-input model."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(model.name, "a model with one input and one output",
                         f"{len(model.inputs)} inputs and {len(model.outputs)} outputs")
    shape = tuple(model.inputs[0].shape)
    if any(d is None for d in shape[1:]):
        raise InputError(f"model input {model.inputs[0].name}", "a static input shape (except batch)",
                         f"shape {shape}", "give the Input layer a fixed shape")
    out = model.outputs[0].shape
    return shape, (int(out[-1]) if out[-1] is not None else None)
