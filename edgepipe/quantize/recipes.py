"""Per-op quantization recipes through ai-edge-quantizer, Google's maintained quantizer for LiteRT.

Why: TensorFlow's converter quantizes a whole model one way; mixing per layer
needed its *internal* ``mlir_quantize(denylisted_nodes=...)`` and
``_experimental_calibrate_only``. ai-edge-quantizer's public API
(``Quantizer(float_tflite)``, recipes per op and tensor-name regex,
``calibrate``, ``quantize``) does per-op precision and weight granularity.

Checked with ai-edge-quantizer 0.10.0 / TF 2.21 / ai-edge-litert 2.3 (docs/quantization.md):
its int8 models have int8 input and output tensors (the model's float I/O is
quantized in place, no QUANTIZE/DEQUANTIZE at the edges), run on LiteRT,
TFLite Micro and Vela like the converter's; it cannot give uint8 or float32
I/O for a fully quantized model, so a build asking for those keeps the
converter's path.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from edgepipe.quantize.flatbuffer import inline_buffers

#: What a layer (by its TFLite tensor names) can be given instead of int8.
PRECISIONS = ("int8", "int16", "float")


@dataclass(frozen=True)
class Recipe:
    """int8 everywhere (activations per tensor, weights per channel) except:

    ``per_tensor_ops``: op kinds (``FULLY_CONNECTED``) whose weights get one scale per tensor;
    ``layers``: TFLite output tensor names -> ``int16`` (16-bit activations, 8-bit weights)
    or ``float`` (not quantized; DEQUANTIZE/QUANTIZE around it).
    """

    per_tensor_ops: tuple[str, ...] = ()
    layers: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"per_tensor_weights": list(self.per_tensor_ops), "layers": dict(self.layers)}


class QuantizerError(Exception):
    """ai-edge-quantizer refused the model or recipe (the message is its own)."""


def quantize(float_tflite: bytes, samples: Iterable[Mapping[str, np.ndarray]], recipe: Recipe,
             signature: str = "serving_default") -> bytes:
    """Full-integer model from a float ``.tflite`` and calibration samples (dicts keyed by input name)."""
    from ai_edge_quantizer import qtyping, quantizer

    q = quantizer.Quantizer(bytearray(float_tflite))
    q.add_static_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, 8, 8)
    for op in recipe.per_tensor_ops:
        q.add_static_config(".*", qtyping.TFLOperationName(op), 8, 8,
                            weight_granularity=qtyping.QuantGranularity.TENSORWISE)
    for name, precision in recipe.layers.items():
        _layer_config(q, name, precision, recipe.per_tensor_ops)
    try:
        with warnings.catch_warnings():  # its calibration interpreter warns about preserving all tensors
            warnings.simplefilter("ignore")
            calib = _calibrate(float_tflite, q.get_quantization_recipe(), {signature: list(samples)})
            out = bytes(q.quantize(calib, enable_progress_report=False).quantized_model)
    except (ValueError, RuntimeError, KeyError, NotImplementedError) as exc:
        raise QuantizerError((str(exc).strip().splitlines() or [type(exc).__name__])[-1]) from None
    return inline_buffers(out)


def _calibrate(float_tflite: bytes, recipe: list, data: dict) -> dict:
    """Activation ranges as the TFLite converter takes them: the min and max over all samples.

    ``Quantizer.calibrate`` keeps a moving average (smoothing 0.95) of per-sample ranges, which
    clips every range the last samples did not reach: on LeNet-5 (digits) its int8 model had
    26.4 dB output SQNR against the converter's 40.2 dB, with the same weights. Its
    ``Calibrator`` takes the update rule as an argument (``qsv_utils.min_max_update``).
    """
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe)
    calib = calibrator.Calibrator(float_tflite, num_threads=1, qsv_update_func=qsv_utils.min_max_update)
    calib.calibrate(data, manager)
    return calib.get_model_qsvs()


def _layer_config(q, tensor_name: str, precision: str, per_tensor_ops: tuple[str, ...]) -> None:
    from ai_edge_quantizer import algorithm_manager, qtyping

    regex = f"^{re.escape(tensor_name)};"  # an op's scope: its output tensor names, each followed by ';'
    op = qtyping.TFLOperationName.ALL_SUPPORTED
    if precision == "float":
        q.update_quantization_recipe(regex, op, algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
    elif precision == "int16":
        q.add_static_config(regex, op, 16, 8)
        for kind in per_tensor_ops:
            q.add_static_config(regex, qtyping.TFLOperationName(kind), 16, 8,
                                weight_granularity=qtyping.QuantGranularity.TENSORWISE)
    elif precision != "int8":
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")


def signature_samples(rep, input_names: list[str], on_sample: Callable[[int], None] | None = None):
    """Calibration samples as ai-edge-quantizer wants them: one dict per sample, batch 1, float32."""
    from edgepipe.data.samples import Samples

    for i in range(len(rep)):
        if on_sample:
            on_sample(i)
        if isinstance(rep, Samples):
            yield {name: np.ascontiguousarray(a[i:i + 1], dtype=np.float32) for name, a in rep.named()}
        else:
            yield {input_names[0]: np.ascontiguousarray(rep[i:i + 1], dtype=np.float32)}


def io_refusal(settings) -> str | None:
    """Why ai-edge-quantizer cannot make this build's model (None: it can).

    Its fully quantized models have int8 inputs and outputs (checked with 0.10.0); a build
    asking for uint8, int16 or float32 I/O keeps the TFLite converter's path.
    """
    from edgepipe.config.schema import Scheme

    if settings.scheme is not Scheme.INT8:
        return f"ai-edge-quantizer recipes are used for the int8 scheme only (scheme is {settings.scheme.value})"
    io = (settings.input_dtype.value, settings.output_dtype.value)
    if io != ("int8", "int8"):
        return f"ai-edge-quantizer gives int8 input/output only; the build asks for {'/'.join(io)}"
    return None


def convert_with_recipe(model, rep, settings, recipe: Recipe, on_sample=None,
                        float_tflite: bytes | None = None) -> bytes:
    """Keras model -> float ``.tflite`` (the converter, batch 1) -> ai-edge-quantizer with ``recipe``.

    Raises :class:`~edgepipe.keras_io.convert.ConversionError` when the I/O types asked for are
    not int8 (:func:`io_refusal`) or ai-edge-quantizer refuses the model.
    """
    from edgepipe.deadline import give_up_after, limit
    from edgepipe.fdcapture import captured
    from edgepipe.keras_io.convert import ConversionError, convert_float
    from edgepipe.keras_io.names import input_names

    why = io_refusal(settings)
    if why:
        raise ConversionError(why)
    if rep is None or len(rep) == 0:
        raise ConversionError("full-integer quantization needs representative data (data.representative)")
    fl = float_tflite if float_tflite is not None else convert_float(model)
    samples = signature_samples(rep, input_names(model), on_sample)
    try:
        with give_up_after(limit(), "ai-edge-quantizer"), captured():
            return quantize(fl, samples, recipe)
    except QuantizerError as exc:
        raise ConversionError(f"ai-edge-quantizer refused model {model.name!r} ({recipe.to_dict()}): {exc}") from None


def layer_scopes(model, layers: tuple[str, ...], float_tflite: bytes | None = None) -> list[str]:
    """Output tensor names (ai-edge-quantizer op scopes) of the ops computing ``layers`` and of the
    ops reading their outputs, in ``model``'s float ``.tflite``; ops writing a model output are left
    out (their precision is the output's type, which the I/O contract fixes).

    A tensor fusing several layers belongs to the last of them in model order
    (:func:`edgepipe.harness.attribution.tensor_owners`): a BatchNorm and ReLU folded into a conv
    belong to the ReLU's layer, which is the one attribution names.
    """
    from edgepipe.harness.attribution import tensor_owners
    from edgepipe.keras_io.convert import convert_float
    from edgepipe.tflite.model import parse_tflite

    tfl = parse_tflite(float_tflite if float_tflite is not None else convert_float(model))
    owners = tensor_owners(tfl, [layer.name for layer in model.layers])
    owned = {i for i, name in owners.items() if name in layers}
    writers = [op for op in tfl.operators if owned & set(op.outputs)]
    readers = [op for op in tfl.operators if owned & set(op.inputs)]
    outputs = set(tfl.outputs)
    scopes = []
    for op in dict.fromkeys(writers + readers):
        if not (set(op.outputs) & outputs):
            scopes += [tfl.tensors[i].name for i in op.outputs[:1] if i >= 0]
    return list(dict.fromkeys(scopes))
