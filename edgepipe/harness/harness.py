"""The verification harness: float model, device runtime and host reference on the eval data.

Data is read chunk by chunk (:class:`EvalData`), so a memory-mapped ``.npy``
or a lazily read image folder larger than memory is never held whole; every
figure is an accumulator from :mod:`edgepipe.harness.metrics`, fed per chunk.
For each chunk the harness runs

1. the float Keras model (:class:`FloatOutputs`, kept for reuse when small),
2. the runner accuracy is measured with (batched where the model allows),
3. optionally a second runner on an evenly spread subset, compared in LSBs.

The result is the report's ``accuracy`` section: float vs labels, quantized vs
labels and vs float (per output), device runtime vs host reference.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from edgepipe.data.sources import Dataset
from edgepipe.data.validate import apply_preprocess, check_labels, prepare_inputs
from edgepipe.pipeline.progress import SILENT, Progress
from edgepipe.runtimes.base import Runner
from edgepipe.runtimes.quant import dequantize
from edgepipe.tflite.model import TfliteModel
from edgepipe.harness import metrics

MAX_CHUNK = 1024
CHUNK_BYTES = 64 << 20  # float32 samples read at once
FLOAT_CACHE_BYTES = 256 << 20


@dataclass
class EvalData:
    """Samples shaped like the model input and optional labels, read in chunks.

    ``x`` is anything with ``len``/``shape`` and slicing: an array, a
    memory-mapped ``.npy`` or a lazy image folder. ``preprocess`` is
    ``(scale, mean, std)``, applied per chunk; ``input_shape`` (batch first)
    checks each chunk's shape and values as the build's loader does.
    ``chunk_size`` defaults to what fits :data:`CHUNK_BYTES` as float32, at most
    :data:`MAX_CHUNK` samples.
    """

    x: object
    y: np.ndarray | None = None
    where: str = "eval data"
    preprocess: tuple | None = None
    input_shape: tuple | None = None
    task: str = "classification"
    n_classes: int | None = None
    chunk_size: int | None = None

    def __post_init__(self):
        if not self.chunk_size:
            sample = 4 * int(np.prod(self.x.shape[1:], dtype=np.int64))
            self.chunk_size = max(1, min(MAX_CHUNK, CHUNK_BYTES // max(sample, 1)))

    @classmethod
    def from_dataset(cls, ds: Dataset, input_shape: tuple, preprocess=None, task: str = "classification",
                     n_classes: int | None = None, chunk_size: int | None = None) -> "EvalData":
        return cls(ds.x, ds.y, ds.where, preprocess, input_shape, task, n_classes, chunk_size)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def chunks(self) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """(start index, float32 samples, labels or None), chunk by chunk."""
        for start in range(0, len(self), self.chunk_size):
            yield (start, *self._read(slice(start, start + self.chunk_size)))

    def take(self, n: int) -> np.ndarray:
        """``n`` evenly spaced samples (all if fewer), for probes and attribution."""
        return self.at(np.linspace(0, len(self) - 1, min(n, len(self))).round().astype(int))

    def at(self, indices) -> np.ndarray:
        """The samples at ``indices`` (sorted, duplicates dropped)."""
        idx = np.unique(np.asarray(indices, int))
        return np.concatenate([self._read(slice(i, i + 1))[0] for i in idx]) if len(idx) else np.zeros((0,))

    def _read(self, sl: slice) -> tuple[np.ndarray, np.ndarray | None]:
        x = self.x[sl]
        if self.input_shape is not None:
            x = prepare_inputs(Dataset(np.asarray(x), None, self.where), self.input_shape, "eval")
        x = np.asarray(x, np.float32)
        if self.preprocess is not None:
            x = apply_preprocess(x, *self.preprocess)
        y = None
        if self.y is not None:
            y = np.asarray(self.y[sl])
            if self.input_shape is not None:
                y = check_labels(Dataset(x, y, self.where), len(x), self.task, self.n_classes)
        return x, y


class FloatOutputs:
    """The float Keras model's outputs per chunk, kept when they fit ``FLOAT_CACHE_BYTES``.

    :func:`float_outputs` hands out one instance per (model, data) pair, so
    the accuracy-aware loop and the verify stage of one build run the float
    model over the eval data once.
    """

    def __init__(self, model):
        self.model = model
        self._kept: dict[int, list[np.ndarray]] = {}
        self._bytes = self._batch = 0

    def __call__(self, start: int, x: np.ndarray) -> list[np.ndarray]:
        if start in self._kept and len(self._kept[start][0]) == len(x):
            return self._kept[start]
        self._batch = max(self._batch, len(x))
        pad = np.zeros((self._batch - len(x), *x.shape[1:]), x.dtype)  # one traced shape for every chunk
        out = self.model.predict_on_batch(np.concatenate([x, pad]) if len(pad) else x)
        outs = list(out.values()) if isinstance(out, dict) else list(out) if isinstance(out, (list, tuple)) else [out]
        outs = [np.asarray(o, np.float32)[: len(x)] for o in outs]
        size = sum(o.nbytes for o in outs)
        if self._bytes + size <= FLOAT_CACHE_BYTES:
            self._kept[start] = outs
            self._bytes += size
        return outs


_LAST: list = []  # [(weakref(model), weakref(x), FloatOutputs)]: the current build's float outputs


def float_outputs(model, data: EvalData) -> FloatOutputs:
    """The :class:`FloatOutputs` of ``model`` on ``data.x`` (the same object while both live)."""
    if _LAST:
        model_ref, x_ref, cached = _LAST[0]
        if model_ref() is model and x_ref() is data.x:
            return cached
    fresh = FloatOutputs(model)
    try:
        _LAST[:] = [(weakref.ref(model), weakref.ref(data.x), fresh)]
    except TypeError:  # not weak-referenceable: no reuse
        _LAST.clear()
    return fresh


@dataclass
class _OutputStats:
    name: str
    vs_float: metrics.ErrorStats = field(default_factory=metrics.ErrorStats)
    lsb: metrics.LsbStats = field(default_factory=metrics.LsbStats)
    vs_reference: metrics.ErrorStats = field(default_factory=metrics.ErrorStats)


def evaluate(data: EvalData, float_fn: Callable[[int, np.ndarray], list[np.ndarray]] | None, runner: Runner,
             tfl: TfliteModel, *, reference: Runner | None = None, reference_samples: int | None = None,
             progress: Progress = SILENT, label: str = "evaluating") -> dict:
    """The report's accuracy section for ``runner`` (and ``reference``, if given) on ``data``.

    ``float_fn`` (the float model's outputs per chunk) is None when only the
    ``.tflite`` is at hand (``edgepipe verify``): there is then nothing to compare
    with but the labels. ``reference`` runs on at most ``reference_samples``
    evenly spread samples (all when None); its integer outputs are compared with
    ``runner``'s, element by element (LSBs) and by top-1 class. If the reference
    runtime fails mid-way, the cross-check stops and says why; the device
    runner's own failures propagate (:class:`~edgepipe.runtimes.isolated.RuntimeFailure`).
    """
    n = len(data)
    every = max(1, math.ceil(n / reference_samples)) if reference_samples else 1
    acc = _Accumulators(data, tfl, float_fn is not None, reference is not None)
    with progress.task(label, n) as update:
        for start, x, y in data.chunks():
            raw = runner.raw(x)
            acc.add(start, x, y, raw, float_fn(start, x) if float_fn else None)
            pick = np.flatnonzero((np.arange(start, start + len(x)) % every) == 0)
            if reference is not None and len(pick) and acc.reference_failure is None:
                acc.cross(reference, x, raw, pick, start)
            update(start + len(x))
    return acc.section()


class _Accumulators:
    """Every figure of one evaluation, fed chunk by chunk."""

    def __init__(self, data: EvalData, tfl: TfliteModel, with_float: bool, with_reference: bool):
        self.task, self.n, self.tfl = data.task, len(data), tfl
        self.labelled, self.with_float, self.with_reference = data.y is not None, with_float, with_reference
        self.params = [_qparams(t) for t in tfl.output_tensors]
        self.per_out = [_OutputStats(t.name) for t in tfl.output_tensors]
        self.labels_f, self.labels_q = _label_stats(self.task, data.n_classes), _label_stats(self.task, data.n_classes)
        self.agree, self.runtime_agree = metrics.AgreementStats(), metrics.AgreementStats()
        self.reference_failure: str | None = None

    def add(self, start: int, x, y, raw: list[np.ndarray], float_outs: list[np.ndarray] | None) -> None:
        q = [dequantize(r, *p) for r, p in zip(raw, self.params)]
        if y is not None:
            self.labels_q.update(y, q[0])
        if float_outs is None:
            return
        f = _align(float_outs, self.tfl)
        for o, stats in enumerate(self.per_out):
            stats.vs_float.update(f[o], q[o])
        if y is not None:
            self.labels_f.update(y, f[0])
        if self.task == "classification":
            self.agree.update(f[0], q[0])

    def cross(self, reference: Runner, x, raw: list[np.ndarray], pick: np.ndarray, start: int) -> None:
        from edgepipe.runtimes.isolated import RuntimeFailure

        try:
            ref_raw = reference.raw(x[pick])
        except RuntimeFailure as exc:
            self.reference_failure = str(exc)
            return
        for o, stats in enumerate(self.per_out):
            ref_q, dev_q = dequantize(ref_raw[o], *self.params[o]), dequantize(raw[o][pick], *self.params[o])
            stats.lsb.update(raw[o][pick], ref_raw[o], start + pick)
            stats.vs_reference.update(ref_q, dev_q)
            if o == 0 and self.task == "classification":
                self.runtime_agree.update(ref_q, dev_q)

    def section(self) -> dict:
        """Float vs labels (``float``), quantized vs labels (``quantized``), quantized vs float
        (``agreement``, ``output_error``, per output in ``outputs``), device vs reference (``cross_check``)."""
        acc: dict = {"task": self.task, "samples": self.n}
        if self.with_float:
            acc["output_error"] = self.per_out[0].vs_float.result()
        if self.labelled:
            if self.with_float:
                acc["float"] = self.labels_f.result()
            acc["quantized"] = self.labels_q.result()
        if self.task == "classification":
            if self.with_float:
                acc["agreement"] = self.agree.result()
            if self.labelled and self.labels_q.matrix is not None:
                acc["confusion_matrix"] = self.labels_q.matrix.tolist()
        acc["outputs"] = [{"name": s.name, **({"quantized_vs_float": s.vs_float.result()} if self.with_float else {})}
                          for s in self.per_out]
        if self.with_reference:
            self._cross_section(acc)
        return acc

    def _cross_section(self, acc: dict) -> None:
        for s, d in zip(self.per_out, acc["outputs"]):
            d["device_vs_reference"] = {**s.lsb.result(), "error": s.vs_reference.result()}
        worst = sorted({i for s in self.per_out for _, i in s.lsb.worst})
        cross = {"max_lsb": max(s.lsb.max_lsb for s in self.per_out), "samples": self.per_out[0].lsb.samples,
                 "worst_samples": worst}
        if self.task == "classification" and self.runtime_agree.samples:
            cross["top1_disagreement_pct"] = 100.0 - self.runtime_agree.result()
        if self.reference_failure:
            cross["reference_failure"] = self.reference_failure
        acc["cross_check"] = cross


def _label_stats(task: str, n_classes: int | None):
    return metrics.ClassStats(5, n_classes) if task == "classification" else metrics.ErrorStats()


def _qparams(t) -> tuple[float, int]:
    return (t.scale[0] if t.scale else 1.0), (t.zero_point[0] if t.zero_point else 0)


def _align(float_outs: list[np.ndarray], tfl: TfliteModel) -> list[np.ndarray]:
    """Keras outputs in the .tflite's output order (matched by per-sample shape where unambiguous)."""
    want = [tuple(t.shape[1:]) for t in tfl.output_tensors]
    if len(float_outs) != len(want):
        raise ValueError(f"the float model has {len(float_outs)} outputs, the .tflite {len(want)}")
    got = [tuple(o.shape[1:]) for o in float_outs]
    if got == want or len(set(got)) != len(got):
        return float_outs
    by_shape = {s: o for s, o in zip(got, float_outs)}
    return [by_shape.get(s, o) for s, o in zip(want, float_outs)]
