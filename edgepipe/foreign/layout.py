"""Channels-first sources, channels-last models: the one place data changes layout.

PyTorch and most ONNX files take images as NCHW (audio features as NCW,
volumes as NCDHW). TFLite kernels, and so the converted model, take them
channels-last: onnx2tf moves the channel axis of every input of rank 3 to 5
to the end. The project's data (``.npz``/``.npy`` arrays, a data function)
and its preprocessing describe the *source* model, so each input array is
transposed once, by :func:`to_model`, right after it is read and before it is
checked and preprocessed (``edgepipe/pipeline/inputs.py``); per-channel
``mean``/``std`` then apply to the last axis, the channel axis, as for a Keras
model. The source framework gets the same samples back with :func:`to_source`.

Image folders are read as height × width × channels already: they are not
transposed. ``edgepipe verify`` of the built ``.tflite`` reads data in the
``.tflite``'s layout (NHWC); the build report says which inputs were moved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_NAMES = {2: ("NC", "NC"), 3: ("NCW", "NWC"), 4: ("NCHW", "NHWC"), 5: ("NCDHW", "NDHWC")}


@dataclass(frozen=True)
class Layout:
    """How one tensor's axes differ between the source model and the converted one.

    ``perm`` takes a source-layout array (batch first) to the model's layout:
    ``np.transpose(x, perm)``; the identity when nothing moves.
    """

    source: str
    model: str
    perm: tuple[int, ...]

    @property
    def moved(self) -> bool:
        return self.perm != tuple(range(len(self.perm)))

    def to_dict(self) -> dict:
        return {"source": self.source, "model": self.model, "perm": list(self.perm), "transposed": self.moved}


def channels_last(rank: int) -> Layout:
    """N, C, spatial... → N, spatial..., C."""
    src, dst = _NAMES.get(rank, (f"rank {rank}", f"rank {rank}"))
    return Layout(src, dst, (0, *range(2, rank), 1))


def same(rank: int) -> Layout:
    """Nothing moves (rank 1–2 inputs, channels-last sources)."""
    name = _NAMES[rank][0] if rank in _NAMES else f"rank {rank}"
    return Layout(name, name, tuple(range(rank)))


def detect(source_shape, model_shape) -> Layout:
    """The layout change from ``source_shape`` to ``model_shape`` (both with batch, None: unknown).

    onnx2tf moves the channel axis of rank 3–5 inputs to the end; a shape that
    only fits the identity (a channels-last source, or an input it kept) is
    left as it is. When both fit (e.g. 8×8×8), the converter's rule decides.
    """
    rank = len(model_shape)
    if rank != len(source_shape) or rank < 3:
        return same(rank)
    last = channels_last(rank)
    fits = lambda perm: all(a is None or b is None or a == b  # noqa: E731
                            for a, b in zip((source_shape[i] for i in perm), model_shape))
    if fits(last.perm):
        return last
    return same(rank)


def to_model(x: np.ndarray, layout: Layout) -> np.ndarray:
    """A source-layout batch in the model's layout (an array of another rank is returned as it is,
    so the shape check that follows names what was found)."""
    if not layout.moved or getattr(x, "ndim", None) != len(layout.perm):
        return x
    return np.ascontiguousarray(np.transpose(x, layout.perm))


def to_source(x: np.ndarray, layout: Layout) -> np.ndarray:
    """A model-layout batch back in the source's layout."""
    if not layout.moved:
        return x
    return np.ascontiguousarray(np.transpose(x, np.argsort(layout.perm)))
