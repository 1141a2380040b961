"""edgepipe: compile a trained Keras model into a verified artifact for a device.

The Python API (``edgepipe.build``, ``edgepipe.build_many``, ``edgepipe.fit``,
``edgepipe.verify``, ``edgepipe.inspect``) is loaded lazily so that
``import edgepipe`` stays light: TensorFlow is only imported by the stages
that need it.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["build", "build_many", "fit", "verify", "inspect", "__version__"]


def __getattr__(name: str):
    if name in ("build", "build_many", "fit", "verify", "inspect"):
        from edgepipe import api

        return getattr(api, name)
    raise AttributeError(f"module 'edgepipe' has no attribute {name!r}")

