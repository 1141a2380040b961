"""Errors specific to pruning; all are :class:`edgepipe.errors.EdgepipeError` (exit 2)."""

from __future__ import annotations

from edgepipe.errors import EdgepipeError, InputError


class UntraceableModelError(InputError):
    """The model has no layer graph to read (a subclassed ``keras.Model``)."""

    def __init__(self, model_name: str, class_name: str):
        super().__init__(
            where=f"model {model_name!r}",
            expected="a Functional or Sequential Keras model (a layer graph to prune)",
            found=f"a subclassed model of class {class_name}, whose call() cannot be traced",
            fix="rebuild it with the functional API, or set prune.ratio to 0",
        )


class RebuildError(EdgepipeError):
    """A layer cannot be re-created from its config, so no narrower copy can be built."""

    def __init__(self, layer: str, class_name: str, cause: Exception):
        super().__init__(
            f"layer {layer!r} ({class_name}) cannot be re-created from get_config(): "
            f"{cause} (give the class a complete get_config(), or register it with "
            f"keras.saving.register_keras_serializable)"
        )


class MissingTrainingDataError(EdgepipeError):
    """Fine-tuning was asked for but there is nothing to train on."""

    def __init__(self) -> None:
        super().__init__(
            "prune.finetune is set but no training data was given "
            "(pass training data (x, y), or inputs alone (x, None) to distil without labels, "
            "or remove prune.finetune to skip recovery)"
        )
