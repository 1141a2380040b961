"""Where the built-in profiles and examples live, installed or in a checkout.

A wheel carries them as ``edgepipe/_builtin/``; an editable install or a
source checkout reads them from the repository's top-level folders.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def builtin_dir(kind: str) -> Path:
    """The folder of built-in ``targets`` or ``examples``."""
    installed = _PKG / "_builtin" / kind
    if installed.is_dir():
        return installed
    return _PKG.parent / kind
