"""LiteRT (ai-edge-litert) on the host: XNNPACK kernels, or the reference kernels.

``xnnpack`` is what Linux and Android boards run (``OpResolverType.AUTO``);
``reference`` is ``BUILTIN_REF``, bit-exact with TensorFlow Lite Micro.
Evaluation runs in batches when the model allows resizing its batch axis,
after checking that batched outputs equal batch-1 outputs.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edgepipe.fdcapture import captured
from edgepipe.runtimes.quant import dequantize, quantize

KERNELS = {"xnnpack": OpResolverType.AUTO, "reference": OpResolverType.BUILTIN_REF}


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


class LiteRTRunner:
    """One model in one interpreter; float in, float (dequantized) out."""

    def __init__(self, model_bytes: bytes, threads: int = 1, kernels: str = "xnnpack"):
        self.model_bytes = model_bytes
        self.threads = threads
        self.kernels = kernels
        self._interp = self._new()
        self.batched = False

    def _new(self) -> Interpreter:
        with captured((2,)):  # LiteRT announces its XNNPACK delegate on stderr
            it = Interpreter(model_content=self.model_bytes, num_threads=self.threads,
                             experimental_op_resolver_type=KERNELS[self.kernels])
            it.allocate_tensors()
        return it

    def predict(self, x: np.ndarray, batch_size: int = 64, on_batch=None) -> np.ndarray:
        """Outputs for all samples of ``x`` (float), dequantized to float32."""
        n = len(x)
        if n == 0:
            return np.zeros((0,), np.float32)
        batch = min(batch_size, n)
        if batch > 1 and not self._try_batch(x[: min(4, n)], batch):
            batch = 1
        outs = []
        for start in range(0, n, batch):
            chunk = np.asarray(x[start:start + batch], np.float32)
            outs.append(self._run(chunk, batch)[: len(chunk)])
            if on_batch:
                on_batch(min(start + batch, n))
        return np.concatenate(outs)

    def _try_batch(self, probe: np.ndarray, batch: int) -> bool:
        """Resize to ``batch`` if the model allows it and gives batch-1 results."""
        single = np.concatenate([self._resized(1)._run(probe[i:i + 1], 1) for i in range(len(probe))])
        try:
            self._resized(batch)
            batched = self._run(probe, batch)[: len(probe)]
        except (RuntimeError, ValueError):
            self._resized(1)
            return False
        if batched.shape != single.shape or not np.array_equal(batched, single):
            self._resized(1)
            return False
        self.batched = batch > 1
        return True

    def _resized(self, batch: int) -> "LiteRTRunner":
        detail = self._interp.get_input_details()[0]
        if detail["shape"][0] != batch:
            self._interp.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
            self._interp.allocate_tensors()
        return self

    def _run(self, chunk: np.ndarray, batch: int) -> np.ndarray:
        it = self._interp
        inp = it.get_input_details()[0]
        if len(chunk) < batch:  # pad the last batch instead of resizing again
            pad = np.zeros((batch - len(chunk), *chunk.shape[1:]), np.float32)
            chunk = np.concatenate([chunk, pad])
        scale, zp = inp["quantization"]
        it.set_tensor(inp["index"], quantize(chunk, np.dtype(inp["dtype"]).name, scale, zp))
        it.invoke()
        out = it.get_output_details()[0]
        return dequantize(it.get_tensor(out["index"]), *out["quantization"])

    def raw_output(self, x_one: np.ndarray) -> np.ndarray:
        """The integer output of one sample, for LSB comparisons between runtimes."""
        self._resized(1)
        inp = self._interp.get_input_details()[0]
        scale, zp = inp["quantization"]
        self._interp.set_tensor(inp["index"], quantize(x_one, np.dtype(inp["dtype"]).name, scale, zp))
        self._interp.invoke()
        return self._interp.get_tensor(self._interp.get_output_details()[0]["index"]).copy()

    def latency(self, sample: np.ndarray, repeats: int = 50, warmup: int = 5, budget_s: float = 3.0) -> Latency:
        """Median wall time of single-sample invokes (batch 1, the device's thread count)."""
        it = self._new()
        self._resized(1)
        inp = it.get_input_details()[0]
        scale, zp = inp["quantization"]
        it.set_tensor(inp["index"], quantize(sample[:1], np.dtype(inp["dtype"]).name, scale, zp))
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
