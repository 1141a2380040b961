"""Load a trained model: Keras 3 ``.keras``, Keras 2 or 3 ``.h5``, a SavedModel folder, or (with the
``onnx``/``torch`` extras) an ONNX file or a PyTorch factory, converted by :mod:`edgepipe.foreign`."""

from __future__ import annotations

from pathlib import Path

from edgepipe.keras_io import import_tensorflow
from edgepipe.errors import InputError
from edgepipe.keras_io.messages import keras_reason

SUPPORTED = "a .keras file, a .h5 file, a SavedModel folder, a .onnx file or a PyTorch 'file.py:factory'"


def load_keras_model(path: str | Path):
    """A ``keras.Model`` from a Keras 3 file, a Keras 2 ``.h5`` (config translated) or a SavedModel (signature wrapped).

    An ONNX file (``model.onnx``) or a PyTorch factory (``nets.py:make``,
    ``package.module:make``) is converted to a channels-last Keras model (see
    docs/onnx-pytorch.md); :func:`edgepipe.foreign.load.load_foreign` returns it
    together with its layout and source-framework runner, which a build uses.
    See docs/loading-models.md for what each kind needs and what is refused.
    """
    from edgepipe.foreign import parse_model_spec

    foreign = parse_model_spec(path)
    if foreign is not None:
        from edgepipe.foreign.load import load_foreign

        return load_foreign(foreign).model
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), SUPPORTED, "no such file or folder")
    import_tensorflow()
    import keras

    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise InputError(str(path), SUPPORTED, "a folder without saved_model.pb")
        from edgepipe.keras_io.saved_model import load_saved_model

        return load_saved_model(path)
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise InputError(str(path), SUPPORTED, f"a {path.suffix or 'suffix-less'} file")
    if path.suffix != ".keras":
        from edgepipe.keras_io.legacy import keras2_config, load_keras2_h5

        config = keras2_config(path)
        if config is not None:
            return load_keras2_h5(path, config)
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for bad files
        raise InputError(str(path), f"a loadable Keras model ({SUPPORTED})",
                         keras_reason(exc)) from None

