"""What loading an ONNX file or a PyTorch module yields: the Keras model and how it relates to its source."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from edgepipe.errors import InternalError
from edgepipe.foreign.layout import Layout


class ForeignConversionError(InternalError):
    """A converter (torch.onnx.export, onnx2tf) failed, or its result disagrees with the source. Exit 3."""


@dataclass
class Converted:
    """A converted model: ``model`` is a Keras model taking channels-last inputs, named as edgepipe names them.

    ``inputs``/``outputs`` map each edgepipe name to the source model's name
    (a name TensorFlow cannot take is made one: ``/fc/Gemm_output_0`` →
    ``fc_Gemm_output_0``); ``layouts`` says how each input's axes moved.
    ``run_source(arrays)`` runs the source framework on source-layout arrays
    (in the order of ``inputs``) and returns its outputs in the order of ``outputs``.
    """

    model: object
    kind: str                               # "onnx" or "torch"
    where: str
    sha256: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    layouts: dict[str, Layout]
    run_source: Callable[[list], list]
    framework: str                          # what run_source runs, with its version
    steps: list[str] = field(default_factory=list)   # the conversion, tool by tool, with versions

    def describe(self) -> dict:
        """The report's ``inputs.model.source`` block (the source comparison is added when it has run)."""
        return {"format": self.kind, "reference": self.framework, "conversion": list(self.steps),
                "inputs": {n: {"source_name": self.inputs[n], **self.layouts[n].to_dict()} for n in self.inputs},
                "outputs": {n: {"source_name": s} for n, s in self.outputs.items()},
                "prunable": False}
