"""The optional packages these models need, imported only when such a model is loaded.

A missing one is the user's to install (exit 2, naming the extra), never a traceback.
"""

from __future__ import annotations

import importlib

from edgepipe.errors import MissingDependencyError

ONNX_EXTRA, TORCH_EXTRA = "onnx", "torch"


def need(module: str, extra: str, purpose: str):
    """``import module``, or a :class:`MissingDependencyError` naming ``pip install 'edgepipe[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or module
        raise MissingDependencyError(missing, extra, purpose) from None


def version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version(module)
    except PackageNotFoundError:
        return "?"
