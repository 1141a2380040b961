"""Adapters for the runtimes a device uses: LiteRT, TensorFlow Lite Micro, Vela."""

from __future__ import annotations

import importlib.util

from edgepipe.errors import MissingDependencyError

#: runtime -> (module to find, distribution to install); both come with ``edgepipe[mcu]``.
#: (Keyed by the runtime's value: the worker process imports this package without the config schema.)
RUNTIME_PACKAGES = {"tflm": ("tflite_micro", "tflite-micro"), "ethos-u": ("ethosu", "ethos-u-vela")}


def require_runtime(profile, action: str) -> None:
    """Say before any work starts that a microcontroller or NPU target needs the ``mcu`` extra."""
    module, dist = RUNTIME_PACKAGES.get(profile.runtime.value, (None, None))
    if module and importlib.util.find_spec(module) is None:
        raise MissingDependencyError(dist, "mcu", f"{action} for a {profile.runtime.value} target ({profile.name})")
