"""The runtime backends: one object per runtime that build, verify and inspect all ask.

See :mod:`edgepipe.backends.base`. :func:`backend_for` is the one place that
maps a profile's ``runtime`` to its backend.
"""

from __future__ import annotations

from edgepipe.backends.base import Backend, Firmware, IOContract, Judgement
from edgepipe.config.schema import Runtime, TargetProfile


def backend_for(profile: TargetProfile) -> Backend:
    """The backend for the profile's runtime (``litert``, ``tflm``, ``ethos-u``)."""
    from edgepipe.backends.ethos_u import EthosUBackend
    from edgepipe.backends.litert import LiteRTBackend
    from edgepipe.backends.tflm import TflmBackend

    kinds = {Runtime.LITERT: LiteRTBackend, Runtime.TFLM: TflmBackend, Runtime.ETHOS_U: EthosUBackend}
    return kinds[profile.runtime](profile)


__all__ = ["Backend", "Firmware", "IOContract", "Judgement", "backend_for"]
