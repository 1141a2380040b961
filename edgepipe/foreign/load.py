"""One entry for both kinds: :func:`load_foreign` picks the ONNX or the PyTorch path."""

from __future__ import annotations

from edgepipe.foreign.converted import Converted
from edgepipe.foreign.spec import ForeignSpec


def load_foreign(spec: ForeignSpec, shapes: dict | None = None) -> Converted:
    """The model ``spec`` names, converted; ``shapes`` fixes an ONNX file's dynamic input dimensions
    (per-sample, source layout, by edgepipe input name); a PyTorch example input fixes them itself."""
    if spec.kind == "onnx":
        from edgepipe.foreign.onnx_model import load_onnx

        return load_onnx(spec.path, shapes)
    from edgepipe.foreign.torch_model import load_torch

    return load_torch(spec)
