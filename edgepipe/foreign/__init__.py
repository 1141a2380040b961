"""Models trained outside Keras: ONNX files and PyTorch modules, brought into the same float → int8 flow.

edgepipe's build reads one kind of model, a Keras model (its loader is
:func:`edgepipe.keras_io.load.load_keras_model`). An ONNX file or a PyTorch
``nn.Module`` is turned into one here, with maintained converters:

- PyTorch → ONNX with ``torch.onnx.export`` (:mod:`.torch_model`);
- ONNX → TensorFlow with onnx2tf (:mod:`.onnx_model`), whose graph is then
  called from one Keras layer, like a SavedModel's signature.

onnx2tf turns channels-first (NCHW) inputs into channels-last (NHWC) ones;
:mod:`.layout` records how, and is the one place data arrays (which describe
the *source* model, NCHW) are transposed. :mod:`.reference` runs the source
framework itself (ONNX Runtime, or PyTorch) on the representative samples and
holds the converted float model to it. torch, onnx and onnx2tf are imported
only when a model of these kinds is loaded: they stay out of ``edgepipe
--help``, ``inspect`` and ``verify``.
"""

from edgepipe.foreign.spec import ForeignSpec, is_factory, parse_model_spec

__all__ = ["ForeignSpec", "is_factory", "parse_model_spec"]
