"""Float <-> integer conversion at a quantized model's inputs and outputs."""

from __future__ import annotations

import numpy as np

_INT_TYPES = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32}


def quantize(x: np.ndarray, dtype: str, scale: float, zero_point: int) -> np.ndarray:
    """Float inputs to the tensor's integer type (identity for float tensors)."""
    if dtype not in _INT_TYPES:
        return np.asarray(x, dtype=np.float32)
    info = np.iinfo(_INT_TYPES[dtype])
    q = np.round(np.asarray(x, np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(_INT_TYPES[dtype])


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer outputs back to float (identity for float tensors)."""
    if q.dtype.kind == "f":
        return q.astype(np.float32)
    return ((q.astype(np.float32) - zero_point) * np.float32(scale)).astype(np.float32)
