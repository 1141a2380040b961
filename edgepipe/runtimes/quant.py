"""Float <-> integer conversion at a quantized model's inputs and outputs.

Inputs are quantized exactly as the runtime's own QUANTIZE kernel would
(float32 input -> integer tensor), so a model with integer inputs is measured
on the integers the device would see. The kernels do not agree on how
(measured with ai-edge-litert 2.3 and tflite-micro; see
``tests/test_quantize_rounding.py``):

=============  ===============================================  ====================================
``reference``  ``round(x / scale) + zp``, ties away from zero    LiteRT ``BUILTIN_REF``, TFLite Micro
``optimized``  ``rint(x * (1 / scale)) + zp``, ties to even      XNNPACK, LiteRT's optimized builtins
=============  ===============================================  ====================================

Both divide or multiply in float32. ``np.round(x / scale)`` (ties to even,
division) matches neither: with 8-bit pixels mapped to [-1, 1] a large share
of inputs are exact ties, enough to move top-1 by several points.
"""

from __future__ import annotations

import numpy as np

_INT_TYPES = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32}

REFERENCE, OPTIMIZED = "reference", "optimized"
_ROUNDING = {"litert-reference": REFERENCE, "reference": REFERENCE, "tflm": REFERENCE,
             "litert-xnnpack": OPTIMIZED, "xnnpack": OPTIMIZED, "builtin": OPTIMIZED}


def rounding_for(runtime: str) -> str:
    """The QUANTIZE arithmetic of a runner (``litert-xnnpack``, ``tflm``, ...) or a LiteRT kernel set name."""
    if runtime not in _ROUNDING:
        raise ValueError(f"unknown runtime {runtime!r} (known: {', '.join(sorted(_ROUNDING))})")
    return _ROUNDING[runtime]


def quantize(x: np.ndarray, dtype: str, scale: float, zero_point: int, rounding: str = REFERENCE) -> np.ndarray:
    """Float inputs to the tensor's integer type as ``rounding``'s kernels do (identity for float tensors).

    ``rounding``: :data:`REFERENCE` (TFLite reference kernels, TFLM) or
    :data:`OPTIMIZED` (XNNPACK); :func:`rounding_for` maps a runtime to it.
    """
    if dtype not in _INT_TYPES:
        return np.asarray(x, dtype=np.float32)
    x = np.asarray(x, np.float32)
    if rounding == REFERENCE:
        q = _round_half_away(x / np.float32(scale))
    elif rounding == OPTIMIZED:
        q = np.rint(x * (np.float32(1) / np.float32(scale))).astype(np.float64)
    else:
        raise ValueError(f"unknown rounding {rounding!r} (known: {REFERENCE}, {OPTIMIZED})")
    info = np.iinfo(_INT_TYPES[dtype])
    return np.clip(q + zero_point, info.min, info.max).astype(_INT_TYPES[dtype])


def _round_half_away(v: np.ndarray) -> np.ndarray:
    """C's ``round``: halves away from zero. ``floor(|v| + 0.5)`` is right for every float32 ``v`` only in
    float64 (in float32, 0.49999997 + 0.5 rounds to 1.0)."""
    v = v.astype(np.float64)
    return np.copysign(np.floor(np.abs(v) + 0.5), v)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer outputs back to float (identity for float tensors)."""
    if q.dtype.kind == "f":
        return q.astype(np.float32)
    return ((q.astype(np.float32) - zero_point) * np.float32(scale)).astype(np.float32)
