"""Samples for a model with several inputs: one array per input, sliced together.

A one-input model takes a plain array of samples everywhere; a model with
several inputs takes a :class:`Samples`, which slices, indexes and counts
like one array (``len``, ``x[a:b]``, ``x[[3, 7]]``) so the harness, the
runners and the calibration code handle both the same way. Inputs are named
(the Keras ``Input`` names, which the converter keeps as signature keys): a
runner matches them to the ``.tflite``'s inputs by name, never by position,
since the converter reorders them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Samples:
    """Sample-aligned arrays, one per named model input (batch axis first in each)."""

    def __init__(self, arrays: Sequence, names: Sequence[str]):
        if len(arrays) != len(names) or not arrays:
            raise ValueError(f"expected one array per input name, found {len(arrays)} arrays for {list(names)}")
        lengths = {len(a) for a in arrays}
        if len(lengths) != 1:
            raise ValueError(f"inputs {list(names)} have different sample counts {[len(a) for a in arrays]}")
        self.arrays, self.names = tuple(arrays), tuple(names)

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index) -> "Samples":
        return Samples([a[index] for a in self.arrays], self.names)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{n}{tuple(getattr(a, 'shape', ()))}" for n, a in self.named())
        return f"Samples({shapes})"

    def __array__(self, *args, **kwargs):
        raise TypeError(f"{self!r} holds several inputs: take them with arrays_of() or order_for()")

    def named(self) -> list[tuple[str, object]]:
        return list(zip(self.names, self.arrays))

    def map(self, fn) -> "Samples":
        """``fn(name, array)`` applied to every input."""
        return Samples([fn(n, a) for n, a in self.named()], self.names)


def arrays_of(x) -> list:
    """The per-input arrays of ``x`` (a plain array is a one-input model's)."""
    return list(x.arrays) if isinstance(x, Samples) else [x]


def names_of(x) -> tuple[str, ...] | None:
    """Input names of ``x``, or None for a plain array (the model's only input)."""
    return x.names if isinstance(x, Samples) else None


def like(x, arrays: list):
    """``arrays`` in the form of ``x``: a Samples with its names, or the one array."""
    return Samples(arrays, x.names) if isinstance(x, Samples) else arrays[0]


def as_float32(x):
    """Every input as a contiguous float32 array (for runners and pickling to workers)."""
    return like(x, [np.ascontiguousarray(a, np.float32) for a in arrays_of(x)])


def concat(parts: list):
    """Join chunks of samples (all plain arrays, or all Samples with the same names)."""
    return like(parts[0], [np.concatenate(p) for p in zip(*(arrays_of(x) for x in parts))])


def pad(x, n: int):
    """``x`` padded with zero samples up to ``n`` (one traced shape for every chunk)."""
    if len(x) >= n:
        return x
    return like(x, [np.concatenate([a, np.zeros((n - len(a), *a.shape[1:]), a.dtype)]) for a in arrays_of(x)])


def sample_bytes(x) -> int:
    """float32 bytes of one sample over every input."""
    return sum(4 * int(np.prod(a.shape[1:], dtype=np.int64)) for a in arrays_of(x))


def order_for(x, want: Sequence[str], where: str) -> list:
    """The arrays of ``x`` in the order of ``want`` (a model's input names), matched by name.

    A plain array is the one input's; a Samples must name exactly the inputs in ``want``.
    """
    if not isinstance(x, Samples):
        if len(want) != 1:
            raise ValueError(f"{where} has {len(want)} inputs {list(want)}, but the data is one array")
        return [x]
    if sorted(x.names) != sorted(want):
        if len(want) == len(x.names) == 1:
            return list(x.arrays)
        raise ValueError(f"{where} has inputs {list(want)}, but the data names {list(x.names)}")
    by_name = dict(x.named())
    return [by_name[n] for n in want]
