"""LiteRT (ai-edge-litert) on the host: XNNPACK kernels, or the reference kernels.

``xnnpack`` is what Linux and Android boards run (``OpResolverType.AUTO``);
``reference`` is ``BUILTIN_REF``, bit-exact with TensorFlow Lite Micro.
Evaluation runs many samples per invoke (:func:`auto_batch`) when the batch axis can be resized
(if a batch-1 ``RESHAPE`` is in the way, on an evaluation copy from
:func:`~edgepipe.runtimes.surgery.batchable`), after checking on the first
samples that the batched integer outputs equal batch-1 outputs of the model
as converted; otherwise it runs one sample per invoke.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edgepipe.data.samples import as_float32, order_for, pad
from edgepipe.fdcapture import captured
from edgepipe.runtimes.quant import dequantize, quantize, rounding_for
from edgepipe.runtimes.surgery import batchable

KERNELS = {"xnnpack": OpResolverType.AUTO, "reference": OpResolverType.BUILTIN_REF,
           "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
PROBE = 4
MAX_BATCH = 256
BATCH_BYTES = 64 << 20  # activation memory one batched invoke may use


@dataclass(frozen=True)
class Latency:
    median_s: float
    p90_s: float
    repeats: int
    threads: int
    source: str = "measured:host"

    def to_dict(self) -> dict:
        return {"median_s": self.median_s, "p90_s": self.p90_s, "repeats": self.repeats,
                "threads": self.threads, "source": self.source,
                "note": "measured on the build host, not on the device"}


def new_interpreter(model_bytes: bytes, kernels: str = "reference", threads: int = 1,
                    preserve_all_tensors: bool = False) -> Interpreter:
    """An interpreter with its tensors allocated (LiteRT's delegate banner captured)."""
    with captured((2,)):
        it = Interpreter(model_content=model_bytes, num_threads=threads,
                         experimental_op_resolver_type=KERNELS[kernels],
                         experimental_preserve_all_tensors=preserve_all_tensors)
        it.allocate_tensors()
    return it


def set_batch(it: Interpreter, batch: int) -> None:
    """Resize every input's batch axis; raises RuntimeError/ValueError if the model refuses."""
    details = [d for d in it.get_input_details() if d["shape"][0] != batch]
    for detail in details:
        it.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
    if details:
        it.allocate_tensors()


def set_inputs(it: Interpreter, names: list[str], x, rounding: str) -> None:
    """Float samples ``x`` (an array, or :class:`~edgepipe.data.samples.Samples` matched to ``names``
    by name) quantized into the interpreter's inputs."""
    for detail, arr in zip(it.get_input_details(), order_for(x, names, "the model")):
        it.set_tensor(detail["index"], quantize_for(detail, arr, rounding))


def quantize_for(detail: dict, x: np.ndarray, rounding: str) -> np.ndarray:
    """Float samples in the dtype of the tensor described by ``detail`` (interpreter details),
    rounded as ``rounding``'s QUANTIZE kernel does (see :mod:`edgepipe.runtimes.quant`)."""
    scale, zp = detail["quantization"]
    return quantize(x, np.dtype(detail["dtype"]).name, scale, zp, rounding)


def auto_batch(model_bytes: bytes) -> int:
    """Samples per invoke: as many as fit :data:`BATCH_BYTES` of peak activations, at most :data:`MAX_BATCH`."""
    from edgepipe.tflite.memory import plan_memory
    from edgepipe.tflite.model import parse_tflite

    peak = plan_memory(parse_tflite(model_bytes)).peak_bytes
    return max(1, min(MAX_BATCH, BATCH_BYTES // max(peak, 1)))


class LiteRTRunner:
    """One model in a LiteRT interpreter: float samples in; raw or dequantized outputs out.

    ``raw(x)`` gives each model output in its own integer type (for LSB
    comparisons between runtimes), ``outputs(x)`` the same dequantized to
    float32, ``predict(x)`` the first output only.
    """

    def __init__(self, model_bytes: bytes, threads: int = 1, kernels: str = "xnnpack", batch_size: int | None = None,
                 rounding: str | None = None):
        self.model_bytes = model_bytes
        self.rounding = rounding or rounding_for(kernels)
        self.threads = threads
        self.kernels = kernels
        self.batch_size = max(1, batch_size or auto_batch(model_bytes))
        self.name = f"litert-{kernels}"
        self._interp = new_interpreter(model_bytes, kernels, threads)
        self.input_names = _input_names(model_bytes)
        self._batch: int | None = None  # decided on the first call
        self.batched = False
        self.batch_note = ""

    # ------------------------------------------------------------------ public

    def raw(self, x: np.ndarray, on_batch=None) -> list[np.ndarray]:
        """Integer outputs (one array per model output, samples first) for float samples ``x``."""
        n = len(x)
        if n and self._batch is None:
            self._choose_batch(as_float32(x[: min(PROBE, n)]))
        outs: list[list[np.ndarray]] = []
        for start in range(0, n, self._batch or 1):
            chunk = as_float32(x[start:start + self._batch])
            got = self._invoke(self._interp, chunk, self._batch)
            outs.append([o[: len(chunk)] for o in got])
            if on_batch:
                on_batch(min(start + self._batch, n))
        if not outs:
            return [np.zeros((0, *d["shape"][1:]), d["dtype"]) for d in self._interp.get_output_details()]
        return [np.concatenate(parts) for parts in zip(*outs)]

    def outputs(self, x: np.ndarray, on_batch=None) -> list[np.ndarray]:
        """Each model output dequantized to float32."""
        return [dequantize(r, *d["quantization"])
                for r, d in zip(self.raw(x, on_batch), self._interp.get_output_details())]

    def predict(self, x: np.ndarray, on_batch=None) -> np.ndarray:
        """The first output, dequantized to float32, for all samples of ``x``."""
        return self.outputs(x, on_batch)[0]

    def raw_output(self, x_one: np.ndarray) -> np.ndarray:
        """The integer first output of one sample (batch 1, the model as converted)."""
        return self.raw(x_one[:1])[0][0:1]

    # ------------------------------------------------------------------ batching

    def _choose_batch(self, probe: np.ndarray) -> None:
        """Largest batch whose outputs equal batch-1 outputs of the model as converted."""
        self._batch = 1
        if self.batch_size == 1:
            return
        single = [np.concatenate(parts) for parts in
                  zip(*(self._invoke(self._interp, probe[i:i + 1], 1) for i in range(len(probe))))]
        for candidate, note in ((self.model_bytes, "batch axis resized"),
                                (batchable(self.model_bytes), "batch-1 RESHAPE freed on an evaluation copy")):
            if candidate is None:
                continue
            try:
                it = self._interp if candidate is self.model_bytes else new_interpreter(candidate, self.kernels,
                                                                                          self.threads)
                set_batch(it, self.batch_size)
                got = [o[: len(probe)] for o in self._invoke(it, probe, self.batch_size)]
            except (RuntimeError, ValueError):
                set_batch(self._interp, 1)
                continue
            if all(g.shape == s.shape and np.array_equal(g, s) for g, s in zip(got, single)):
                self._interp, self._batch, self.batched = it, self.batch_size, True
                self.batch_note = f"{note}; {len(probe)} samples equal to batch-1 runs"
                return
            set_batch(self._interp, 1)
        self.batch_note = "one sample per invoke (batched outputs differ from batch 1 or the model cannot resize)"

    def _invoke(self, it: Interpreter, chunk, batch: int) -> list[np.ndarray]:
        set_inputs(it, self.input_names, pad(chunk, batch), self.rounding)  # pad the last batch, never resize
        it.invoke()
        return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]

    # ------------------------------------------------------------------ latency

    def latency(self, sample, repeats: int = 50, warmup: int = 5, budget_s: float = 3.0) -> Latency:
        """Median wall time of single-sample invokes (batch 1, the device's thread count)."""
        it = new_interpreter(self.model_bytes, self.kernels, self.threads)
        set_inputs(it, self.input_names, as_float32(sample[:1]), self.rounding)
        for _ in range(warmup):
            it.invoke()
        times: list[float] = []
        deadline = time.perf_counter() + budget_s
        while len(times) < repeats and (len(times) < 5 or time.perf_counter() < deadline):
            t0 = time.perf_counter()
            it.invoke()
            times.append(time.perf_counter() - t0)
        times.sort()
        return Latency(statistics.median(times), times[int(0.9 * (len(times) - 1))], len(times), self.threads)


def intermediates(model_bytes: bytes, x: np.ndarray, indices: list[int]) -> dict[int, np.ndarray]:
    """Tensors ``indices`` of a reference-kernel run on float samples ``x``, in a worker process.

    The interpreter runs isolated (:mod:`edgepipe.runtimes.isolated`): a crash
    raises :class:`~edgepipe.runtimes.isolated.RuntimeFailure` here.
    """
    from edgepipe.runtimes.isolated import intermediates as isolated

    return isolated(model_bytes, x, indices)


def intermediates_in_process(model_bytes: bytes, x: np.ndarray, indices: list[int]) -> dict[int, np.ndarray]:
    """Tensors ``indices`` of a run on float samples ``x`` (samples first), in this process.

    Reference kernels (the optimized builtin ones if the reference set lacks an
    op), with ``experimental_preserve_all_tensors`` so every intermediate
    survives the invoke; all samples in one invoke when the batch axis can be
    freed, else one sample per invoke.
    """
    x = as_float32(x)
    it = chunks = None
    for kernels in ("reference", "builtin"):
        try:
            it = new_interpreter(batchable(model_bytes) or model_bytes, kernels, preserve_all_tensors=True)
            set_batch(it, len(x))
            chunks = [x]
        except (RuntimeError, ValueError):
            try:
                it = new_interpreter(model_bytes, kernels, preserve_all_tensors=True)
                chunks = [x[i:i + 1] for i in range(len(x))]
            except (RuntimeError, ValueError):
                if kernels == "builtin":
                    raise
                continue
        break
    names = _input_names(model_bytes)
    got: dict[int, list[np.ndarray]] = {i: [] for i in indices}
    for chunk in chunks:
        set_inputs(it, names, chunk, rounding_for(kernels))
        it.invoke()
        for i in indices:
            got[i].append(it.get_tensor(i).copy())
    return {i: np.concatenate(parts) for i, parts in got.items()}


def _input_names(model_bytes: bytes) -> list[str]:
    """The model's input names in interpreter order (:attr:`~edgepipe.tflite.model.TfliteModel.input_names`)."""
    from edgepipe.tflite.model import parse_tflite

    return parse_tflite(model_bytes).input_names
