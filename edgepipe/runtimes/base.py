"""The runtimes behind one small interface, and which ones a target profile calls for.

Every runner takes float samples (quantized at the model's input as the
device would) and gives either the raw outputs, in each output tensor's own
integer type (``raw``), or the same dequantized to float32 (``outputs``;
``predict`` is the first output). Three runners exist:

========================  ==========================================================
``litert-xnnpack``        LiteRT with XNNPACK (``OpResolverType.AUTO``): Linux/Android boards
``litert-reference``      LiteRT reference kernels (``BUILTIN_REF``): the host reference
``tflm``                  TensorFlow Lite Micro's Python runtime: microcontrollers
========================  ==========================================================

:func:`plan_for` maps a profile's ``runtime`` to the runner that stands for
the device (accuracy is measured with it) and the runner it is cross-checked
against (see ``docs/verification.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

if TYPE_CHECKING:  # the worker process imports this module: it stays free of the config schema
    from edgepipe.config.schema import TargetProfile
from edgepipe.data.samples import as_float32, order_for
from edgepipe.runtimes.quant import dequantize, quantize, rounding_for

XNNPACK, REFERENCE, TFLM = "litert-xnnpack", "litert-reference", "tflm"


class Runner(Protocol):
    """What the harness needs from a runtime."""

    name: str
    batched: bool

    def raw(self, x: np.ndarray, on_batch: Callable[[int], None] | None = None) -> list[np.ndarray]:
        """One integer array per model output (samples first) for float samples ``x``."""

    def outputs(self, x: np.ndarray, on_batch: Callable[[int], None] | None = None) -> list[np.ndarray]:
        """``raw`` dequantized to float32."""

    def predict(self, x: np.ndarray, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """The first output, dequantized."""


@dataclass(frozen=True)
class RuntimePlan:
    """Which runner stands for the device and which one it is cross-checked against.

    Accuracy is measured with ``device`` (for Ethos-U, its CPU equivalent: the
    NPU itself cannot be simulated on the host).
    """

    device: str
    reference: str

    def to_dict(self) -> dict:
        return {"device": self.device, "reference": self.reference}


def plan_for(profile: TargetProfile) -> RuntimePlan:
    """The plan of the profile's backend (:mod:`edgepipe.backends`, the one place that decides it)."""
    from edgepipe.backends import backend_for

    return backend_for(profile).plan


def make_runner(name: str, model_bytes: bytes, threads: int = 1, arena: int | None = None,
                rounding: str | None = None) -> Runner:
    """A runner by name (``litert-xnnpack``, ``litert-reference``, ``tflm``), its interpreter in a worker process.

    ``rounding``: how float samples become the model's integer inputs; by default
    as this runtime's own QUANTIZE kernel does (:func:`~edgepipe.runtimes.quant.rounding_for`).
    A cross-check passes the device's, so both runtimes see the same integers.
    Raises :class:`~edgepipe.runtimes.isolated.RuntimeFailure` when the runtime
    refuses, crashes on or hangs loading the model.
    """
    from edgepipe.runtimes.isolated import IsolatedRunner

    return IsolatedRunner(name, model_bytes, threads if name == XNNPACK else 1, arena, rounding=rounding)


def in_process_runner(name: str, model_bytes: bytes, threads: int = 1, arena: int | None = None,
                      rounding: str | None = None) -> Runner:
    """The same runner in this process: for the worker (and tests of the runners themselves)."""
    rounding = rounding or rounding_for(name)
    if name == TFLM:
        return TflmAdapter(model_bytes, arena, rounding)
    from edgepipe.runtimes.litert import LiteRTRunner

    kernels = {XNNPACK: "xnnpack", REFERENCE: "reference"}[name]
    return LiteRTRunner(model_bytes, threads=threads if kernels == "xnnpack" else 1, kernels=kernels,
                        rounding=rounding)


class TflmAdapter:
    """:class:`~edgepipe.runtimes.tflm.TflmRunner` as a :class:`Runner` (one sample per invoke).

    ``arena``: the tensor arena in bytes; when not given it is measured first
    (in child processes, see :func:`~edgepipe.runtimes.tflm.measure_arena`).
    """

    name = TFLM
    batched = False
    chunk = 64

    def __init__(self, model_bytes: bytes, arena: int | None = None, rounding: str | None = None):
        from edgepipe.runtimes.tflm import TflmRunner

        self.rounding = rounding or rounding_for(TFLM)
        self._runner = TflmRunner(model_bytes, arena, _checked=arena is not None)
        self.arena_bytes = self._runner.arena_size
        self.batch_note = "one sample per invoke (TFLM)"

    def raw(self, x, on_batch=None) -> list[np.ndarray]:
        model = self._runner.model
        parts = []
        for start in range(0, len(x), self.chunk):
            chunk = order_for(as_float32(x[start:start + self.chunk]), model.input_names, "the model")
            parts.append(self._runner.run([quantize(a, t.dtype, *_qparams(t), self.rounding)
                                           for a, t in zip(chunk, model.input_tensors)]))
            if on_batch:
                on_batch(min(start + self.chunk, len(x)))
        return [np.concatenate(p) for p in zip(*parts)] if parts else []

    def outputs(self, x: np.ndarray, on_batch=None) -> list[np.ndarray]:
        return [dequantize(r, *_qparams(t)) for r, t in zip(self.raw(x, on_batch), self._runner.model.output_tensors)]

    def predict(self, x: np.ndarray, on_batch=None) -> np.ndarray:
        return self.outputs(x, on_batch)[0]


def _qparams(t) -> tuple[float, int]:
    return (t.scale[0] if t.scale else 1.0), (t.zero_point[0] if t.zero_point else 0)
