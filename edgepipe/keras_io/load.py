"""Load a trained model: Keras 3 ``.keras``, Keras 2 or 3 ``.h5``, or a SavedModel folder."""

from __future__ import annotations

from pathlib import Path

from edgepipe.keras_io import import_tensorflow
from edgepipe.errors import InputError
from edgepipe.keras_io.messages import keras_reason

SUPPORTED = "a .keras file, a .h5 file or a SavedModel folder"


def load_keras_model(path: str | Path):
    """A ``keras.Model`` from a Keras 3 file, a Keras 2 ``.h5`` (config translated) or a SavedModel (signature wrapped).

    See docs/loading-models.md for what each kind needs and what is refused.
    """
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

