"""Keras model -> .tflite bytes with the target's quantization settings.

The batch dimension is fixed to 1 (a ``None`` batch turns some layers into
SHAPE/FILL/PACK chains). Full-integer schemes calibrate on the given
representative samples, one per step, in the order given, so the same
inputs give the same bytes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from edgepipe.config.schema import IODtype, Scheme
from edgepipe.keras_io import import_tensorflow
from edgepipe.errors import EdgepipeError
from edgepipe.fdcapture import captured


@dataclass(frozen=True)
class ConvertSettings:
    """What the converter is asked for (resolved from target + project config)."""

    scheme: Scheme
    input_dtype: IODtype
    output_dtype: IODtype
    per_channel: bool
    allow_float_fallback: bool

    def to_dict(self) -> dict:
        return {
            "scheme": self.scheme.value, "input_dtype": self.input_dtype.value,
            "output_dtype": self.output_dtype.value, "per_channel": self.per_channel,
            "allow_float_fallback": self.allow_float_fallback,
        }


class ConversionError(EdgepipeError):
    """The TFLite converter refused the model."""


def convert(model, rep_x: np.ndarray | None, settings: ConvertSettings, on_sample=None) -> bytes:
    """Convert ``model`` to TFLite bytes; ``on_sample(i)`` reports calibration progress.

    The converter runs under :func:`edgepipe.deadline.give_up_after` (``EDGEPIPE_CONVERT_TIMEOUT``).
    """
    from edgepipe.deadline import give_up_after, limit

    with give_up_after(limit(), "the TFLite converter"):
        return _convert(model, rep_x, settings, on_sample)


def _convert(model, rep_x: np.ndarray | None, settings: ConvertSettings, on_sample) -> bytes:
    tf = import_tensorflow()

    with captured():
        converter = _converter(model, tf)
    _apply_scheme(converter, settings, tf)
    if settings.scheme in (Scheme.INT8, Scheme.INT16X8):
        converter.representative_dataset = _representative(rep_x, on_sample)
    try:
        with captured() as log, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bytes(converter.convert())
    except Exception as exc:  # noqa: BLE001 - converter errors are free text
        lines = [ln for ln in (str(exc) + "\n" + log.text).strip().splitlines() if "error" in ln.lower()]
        reason = lines[0].strip() if lines else (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise ConversionError(f"the TFLite converter refused model {model.name!r}: {reason}") from None


def convert_float(model) -> bytes:
    """The float ``.tflite`` of ``model`` (batch 1, no optimizations): what ai-edge-quantizer quantizes.

    Its op output names are the int8 conversion's (both come from :func:`_converter`), so a
    layer named by attribution on the int8 model is found in it.
    """
    from edgepipe.deadline import give_up_after, limit

    tf = import_tensorflow()
    with give_up_after(limit(), "the TFLite converter"):
        with captured():
            converter = _converter(model, tf)
        try:
            with captured(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return bytes(converter.convert())
        except Exception as exc:  # noqa: BLE001 - converter errors are free text
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            raise ConversionError(f"the TFLite converter refused model {model.name!r} (float): {reason}") from None


def _converter(model, tf):
    """A converter for ``model`` with each input's batch axis fixed to 1.

    Wrapping the model in a functional model whose Inputs have batch 1 keeps
    Keras 3's own export path (``from_keras_model``), which freezes variables;
    a hand-made concrete function would leave READ_VARIABLE ops behind. The
    signature keys are the Keras names: the inputs keep their ``Input`` names
    and several outputs become a dict keyed by the model's output names, so
    data and outputs are matched by name though the converter reorders them.
    """
    import keras

    from edgepipe.keras_io.names import input_names, output_names

    inputs = [keras.Input(batch_shape=(1, *t.shape[1:]), name=name) for t, name in zip(model.inputs, input_names(model))]
    if isinstance(getattr(model, "input", None), dict):
        outs = model(dict(zip(input_names(model), inputs)), training=False)
    else:
        outs = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    if isinstance(outs, dict) or (isinstance(outs, (list, tuple)) and len(outs) > 1):
        outs = dict(zip(output_names(model), _as_list(outs)))
    fixed = keras.Model(inputs if len(inputs) > 1 else inputs[0], outs, name=model.name)
    return tf.lite.TFLiteConverter.from_keras_model(fixed)


def _as_list(outs) -> list:
    if isinstance(outs, dict):
        return [outs[k] for k in sorted(outs)]
    return list(outs) if isinstance(outs, (list, tuple)) else [outs]


_TF_DTYPES = {"int8": "int8", "uint8": "uint8", "float32": "float32", "int16": "int16"}


def _apply_scheme(converter, s: ConvertSettings, tf) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    ops = tf.lite.OpsSet
    if s.scheme is Scheme.FLOAT16:
        converter.target_spec.supported_types = [tf.float16]
        return
    if s.scheme is Scheme.DYNAMIC:
        return
    if s.scheme is Scheme.INT16X8:
        supported = [ops.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    else:
        supported = [ops.TFLITE_BUILTINS_INT8]
    if s.allow_float_fallback:
        supported.append(ops.TFLITE_BUILTINS)
    converter.target_spec.supported_ops = supported
    converter.inference_input_type = getattr(tf, _TF_DTYPES[s.input_dtype.value])
    converter.inference_output_type = getattr(tf, _TF_DTYPES[s.output_dtype.value])
    if not s.per_channel:  # private (TF 2.21, pinned <2.22): the one left, see docs/dependencies.md
        converter._experimental_disable_per_channel = True


def _representative(rep_x, on_sample):
    """One sample per step, in order; several inputs as a dict keyed by signature (input) name."""
    from edgepipe.data.samples import Samples

    if rep_x is None or len(rep_x) == 0:
        raise ConversionError("full-integer quantization needs representative data (data.representative)")

    def one(a, i):
        return np.ascontiguousarray(a[i:i + 1], dtype=np.float32)

    def gen():
        for i in range(len(rep_x)):
            if on_sample:
                on_sample(i)
            if isinstance(rep_x, Samples):
                yield {name: one(a, i) for name, a in rep_x.named()}
            else:
                yield [one(rep_x, i)]

    return gen
