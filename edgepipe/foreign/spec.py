"""What ``model:`` / ``--model`` names, when it is not a Keras file: an ONNX file or a PyTorch factory.

Three forms, decided from the text alone (no import):

- ``model.onnx`` — an ONNX file, relative to the project config;
- ``nets/kws.py:make`` — a Python file and the factory function in it;
- ``mypkg.models:make`` — an importable module and the factory function in it.

The factory is called with no arguments and returns ``(module, example_input)``
(see docs/onnx-pytorch.md). Anything else is a Keras model file or folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_IMPORTABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_FILE_FACTORY = re.compile(r"^(?P<file>.+\.py):(?P<func>[A-Za-z_]\w*)$")


@dataclass(frozen=True)
class ForeignSpec:
    """An ONNX file (``kind='onnx'``, ``path``) or a PyTorch factory (``kind='torch'``,
    ``path`` of its file or ``module`` to import, and ``factory``)."""

    kind: str
    text: str                      # as the user wrote it (after resolving a file against the config's folder)
    path: Path | None = None
    module: str | None = None
    factory: str | None = None

    @property
    def where(self) -> str:
        return self.text


def is_factory(text: str) -> bool:
    """``file.py:func`` or ``package.module:func`` (a PyTorch factory), judged from the text."""
    return bool(_FILE_FACTORY.match(text) or (_IMPORTABLE.match(text) and not text.endswith(".py")))


def parse_model_spec(model: str | Path) -> ForeignSpec | None:
    """The :class:`ForeignSpec` of ``model``, or None for a Keras file or folder."""
    text = str(model)
    m = _FILE_FACTORY.match(text)
    if m:
        return ForeignSpec("torch", text, path=Path(m["file"]), factory=m["func"])
    if _IMPORTABLE.match(text) and not Path(text).exists():
        module, func = text.rsplit(":", 1)
        return ForeignSpec("torch", text, module=module, factory=func)
    if text.lower().endswith(".onnx"):
        return ForeignSpec("onnx", text, path=Path(text))
    return None
