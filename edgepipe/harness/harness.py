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

from edgepipe.data import samples
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


@dataclass(frozen=True)
class OutputJudge:
    """How one model output is judged: by ``task`` against its labels when the data has them, else
    against the float model (``name`` None: the model's only output)."""

    name: str | None
    task: str = "classification"
    n_classes: int | None = None


@dataclass
class EvalData:
    """Samples shaped like the model inputs and optional labels, read in chunks.

    ``x`` is anything with ``len``/``shape`` and slicing: an array, a
    memory-mapped ``.npy``, a lazy image folder, or
    :class:`~edgepipe.data.samples.Samples` for several inputs. ``preprocess``
    is ``(scale, mean, std)``, applied per chunk; ``input_shape`` (batch first)
    checks each chunk's shape and values as the build's loader does.
    ``chunk_size`` defaults to what fits :data:`CHUNK_BYTES` as float32, at most
    :data:`MAX_CHUNK` samples. A one-output model is judged by ``task`` against
    ``y``; several outputs by ``outputs`` (one :class:`OutputJudge` each,
    matched to the ``.tflite`` by name) against ``labels`` (by output name).
    """

    x: object
    y: np.ndarray | None = None
    where: str = "eval data"
    preprocess: tuple | None = None
    input_shape: tuple | None = None
    task: str = "classification"
    n_classes: int | None = None
    chunk_size: int | None = None
    outputs: tuple[OutputJudge, ...] = ()
    labels: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.chunk_size:
            self.chunk_size = max(1, min(MAX_CHUNK, CHUNK_BYTES // max(samples.sample_bytes(self.x), 1)))
        if not self.outputs:
            self.outputs = (OutputJudge(None, self.task, self.n_classes),)
            self.labels = {None: self.y} if self.y is not None else {}

    @classmethod
    def from_dataset(cls, ds: Dataset, input_shape: tuple, preprocess=None, task: str = "classification",
                     n_classes: int | None = None, chunk_size: int | None = None) -> "EvalData":
        return cls(ds.x, ds.y, ds.where, preprocess, input_shape, task, n_classes, chunk_size)

    @property
    def labelled(self) -> bool:
        return bool(self.labels)

    def __len__(self) -> int:
        return len(self.x)

    def chunks(self) -> Iterator[tuple[int, object, dict]]:
        """(start index, float32 samples, labels by output name), chunk by chunk."""
        for start in range(0, len(self), self.chunk_size):
            yield (start, *self._read(slice(start, start + self.chunk_size)))

    def take(self, n: int):
        """``n`` evenly spaced samples (all if fewer), for probes and attribution."""
        return self.at(np.linspace(0, len(self) - 1, min(n, len(self))).round().astype(int))

    def at(self, indices):
        """The samples at ``indices`` (sorted, duplicates dropped)."""
        idx = np.unique(np.asarray(indices, int))
        if not len(idx):
            return np.zeros((0,))
        return samples.concat([self._read(slice(i, i + 1))[0] for i in idx])

    def _read(self, sl: slice) -> tuple[object, dict]:
        x = self.x[sl]
        if isinstance(x, samples.Samples):
            x = samples.as_float32(x)
        else:
            if self.input_shape is not None:
                x = prepare_inputs(Dataset(np.asarray(x), None, self.where), self.input_shape, "eval")
            x = np.asarray(x, np.float32)
            if self.preprocess is not None:
                x = apply_preprocess(x, *self.preprocess)
        ys = {}
        for judge in self.outputs:
            if judge.name in self.labels:
                y = np.asarray(self.labels[judge.name][sl])
                if self.input_shape is not None:
                    y = check_labels(Dataset(x, y, self.where), len(x), judge.task, judge.n_classes)
                ys[judge.name] = y
        return x, ys


class FloatOutputs:
    """The float Keras model's outputs per chunk, by output name, kept when they fit ``FLOAT_CACHE_BYTES``.

    :func:`float_outputs` hands out one instance per (model, data) pair, so
    the accuracy-aware loop and the verify stage of one build run the float
    model over the eval data once.
    """

    def __init__(self, model):
        from edgepipe.keras_io.names import input_names

        self.model = model
        self.input_names = input_names(model)
        self._kept: dict[int, dict[str, np.ndarray]] = {}
        self._bytes = self._batch = 0

    def __call__(self, start: int, x) -> dict[str, np.ndarray]:
        from edgepipe.keras_io.names import named_outputs

        if start in self._kept and len(next(iter(self._kept[start].values()))) == len(x):
            return self._kept[start]
        self._batch = max(self._batch, len(x))
        feed = samples.order_for(samples.pad(x, self._batch), self.input_names, f"model {self.model.name!r}")
        out = self.model.predict_on_batch(feed if len(feed) > 1 else feed[0])  # one traced shape for every chunk
        outs = {k: np.asarray(v, np.float32)[: len(x)] for k, v in named_outputs(self.model, out).items()}
        size = sum(o.nbytes for o in outs.values())
        if self._bytes + size <= FLOAT_CACHE_BYTES:
            self._kept[start] = outs
            self._bytes += size
        return outs


_LAST: list = []  # [(weakref(model), weakref(x), FloatOutputs)]: the current build's float outputs
_KEEP = 2          # the model being built and, after pruning, the original


def float_outputs(model, data: EvalData) -> FloatOutputs:
    """The :class:`FloatOutputs` of ``model`` on ``data.x`` (the same object while both live)."""
    for model_ref, x_ref, cached in _LAST:
        if model_ref() is model and x_ref() is data.x:
            return cached
    fresh = FloatOutputs(model)
    try:
        _LAST[:] = [(weakref.ref(model), weakref.ref(data.x), fresh), *_LAST][:_KEEP]
    except TypeError:  # not weak-referenceable: no reuse
        pass
    return fresh


@dataclass
class _OutputStats:
    """Every figure of one output: against its labels, the float model(s) and the reference runtime."""

    name: str
    judge: OutputJudge
    vs_float: metrics.ErrorStats = field(default_factory=metrics.ErrorStats)
    agree: metrics.AgreementStats = field(default_factory=metrics.AgreementStats)
    vs_original: metrics.ErrorStats = field(default_factory=metrics.ErrorStats)
    agree_original: metrics.AgreementStats = field(default_factory=metrics.AgreementStats)
    labels_f: object = None
    labels_q: object = None
    lsb: metrics.LsbStats = field(default_factory=metrics.LsbStats)
    vs_reference: metrics.ErrorStats = field(default_factory=metrics.ErrorStats)
    runtime_agree: metrics.AgreementStats = field(default_factory=metrics.AgreementStats)

    def __post_init__(self):
        self.labels_f, self.labels_q = (_label_stats(self.judge.task, self.judge.n_classes) for _ in range(2))

    @property
    def classification(self) -> bool:
        return self.judge.task == "classification"

    def add(self, q: np.ndarray, f: np.ndarray | None, y: np.ndarray | None, orig: np.ndarray | None) -> None:
        if y is not None:
            self.labels_q.update(y, q)
            if f is not None:
                self.labels_f.update(y, f)
        if f is not None:
            self.vs_float.update(f, q)
            if self.classification:
                self.agree.update(f, q)
        if orig is not None:
            self.vs_original.update(orig, q)
            if self.classification:
                self.agree_original.update(orig, q)

    def result(self, labelled: bool, with_float: bool, with_original: bool) -> dict:
        out: dict = {"name": self.name, "task": self.judge.task, "labelled": labelled}
        if with_float:
            out["quantized_vs_float"] = self.vs_float.result()
            if self.classification:
                out["agreement"] = self.agree.result()
        if with_original:
            out["quantized_vs_original"] = {**self.vs_original.result(), **(
                {"agreement": self.agree_original.result()} if self.classification else {})}
        if labelled:
            if with_float:
                out["float"] = self.labels_f.result()
            out["quantized"] = self.labels_q.result()
            if self.classification and self.labels_q.matrix is not None:
                out["confusion_matrix"] = self.labels_q.matrix.tolist()
        return out


def evaluate(data: EvalData, float_fn: Callable | None, runner: Runner, tfl: TfliteModel, *,
             reference: Runner | None = None, reference_samples: int | None = None,
             progress: Progress = SILENT, label: str = "evaluating", original_fn: Callable | None = None) -> dict:
    """The report's accuracy section for ``runner`` (and ``reference``, if given) on ``data``.

    ``float_fn`` (the float model's outputs per chunk, by name) is None when
    only the ``.tflite`` is at hand (``edgepipe verify``): there is then
    nothing to compare with but the labels. ``original_fn``: the unpruned
    float model's, when the model was pruned. ``reference`` runs on at most
    ``reference_samples`` evenly spread samples (all when None); its integer
    outputs are compared with ``runner``'s, element by element (LSBs) and by
    top-1 class. If the reference runtime fails mid-way, the cross-check stops
    and says why; the device runner's own failures propagate
    (:class:`~edgepipe.runtimes.isolated.RuntimeFailure`).
    """
    n = len(data)
    every = max(1, math.ceil(n / reference_samples)) if reference_samples else 1
    acc = _Accumulators(data, tfl, float_fn is not None, reference is not None, original_fn is not None)
    with progress.task(label, n) as update:
        for start, x, ys in data.chunks():
            raw = runner.raw(x)
            acc.add(raw, ys, float_fn(start, x) if float_fn else None, original_fn(start, x) if original_fn else None)
            pick = np.flatnonzero((np.arange(start, start + len(x)) % every) == 0)
            if reference is not None and len(pick) and acc.reference_failure is None:
                acc.cross(reference, x, raw, pick, start)
            update(start + len(x))
    return acc.section()


class _Accumulators:
    """Every figure of one evaluation, fed chunk by chunk; outputs in the .tflite's order."""

    def __init__(self, data: EvalData, tfl: TfliteModel, with_float: bool, with_reference: bool,
                 with_original: bool = False):
        self.n, self.tfl, self.data = len(data), tfl, data
        self.with_float, self.with_reference, self.with_original = with_float, with_reference, with_original
        self.params = [_qparams(t) for t in tfl.output_tensors]
        judges = _match_judges(data.outputs, tfl)
        self.per_out = [_OutputStats(name, judge) for name, judge in zip(tfl.output_names, judges)]
        self.reference_failure: str | None = None

    def add(self, raw: list[np.ndarray], ys: dict, float_outs: dict | None, original: dict | None) -> None:
        q = [dequantize(r, *p) for r, p in zip(raw, self.params)]
        f = _align(float_outs, self.tfl) if float_outs is not None else [None] * len(q)
        o = _align(original, self.tfl) if original is not None else [None] * len(q)
        for k, stats in enumerate(self.per_out):
            stats.add(q[k], f[k], ys.get(stats.judge.name), o[k])

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
            if stats.classification:
                stats.runtime_agree.update(ref_q, dev_q)

    def section(self) -> dict:
        """Per output (``outputs``): vs labels (``float``, ``quantized``), vs float (``quantized_vs_float``,
        ``agreement``), vs the unpruned model; device vs reference (``cross_check``). A one-output model
        also has its figures at the top level, as the report always had them."""
        labelled = {s.judge.name for s in self.per_out if s.judge.name in self.data.labels}
        outs = [s.result(s.judge.name in labelled, self.with_float, self.with_original) for s in self.per_out]
        acc: dict = {"task": self.per_out[0].judge.task if len(self.per_out) == 1 else "several",
                     "samples": self.n, "labelled": bool(labelled)}
        if len(outs) == 1:
            first = outs[0]
            if self.with_float:
                acc["output_error"] = first["quantized_vs_float"]
            acc.update({k: first[k] for k in ("float", "quantized", "agreement", "confusion_matrix") if k in first})
        acc["outputs"] = outs
        if self.with_reference:
            self._cross_section(acc)
        return acc

    def _cross_section(self, acc: dict) -> None:
        for s, d in zip(self.per_out, acc["outputs"]):
            d["device_vs_reference"] = {**s.lsb.result(), "error": s.vs_reference.result()}
        worst = sorted({i for s in self.per_out for _, i in s.lsb.worst})
        cross = {"max_lsb": max(s.lsb.max_lsb for s in self.per_out), "samples": self.per_out[0].lsb.samples,
                 "worst_samples": worst}
        agree = [s.runtime_agree for s in self.per_out if s.classification and s.runtime_agree.samples]
        if agree:
            cross["top1_disagreement_pct"] = max(100.0 - a.result() for a in agree)
        if self.reference_failure:
            cross["reference_failure"] = self.reference_failure
        acc["cross_check"] = cross


def _match_judges(judges: tuple[OutputJudge, ...], tfl: TfliteModel) -> list[OutputJudge]:
    """Each .tflite output's judge, by name; a lone unnamed judge is the model's only output's."""
    names = tfl.output_names
    if len(judges) == 1 and judges[0].name is None:
        if len(names) != 1:
            return [judges[0]] + [OutputJudge(n, "raw") for n in names[1:]]
        return [judges[0]]
    by_name = {j.name: j for j in judges}
    missing = [j.name for j in judges if j.name not in names]
    if missing:
        raise ValueError(f"the .tflite has outputs {names}, but the config names {missing}")
    return [by_name.get(n, OutputJudge(n, "raw")) for n in names]


def _label_stats(task: str, n_classes: int | None):
    return metrics.ClassStats(5, n_classes) if task == "classification" else metrics.ErrorStats()


def _qparams(t) -> tuple[float, int]:
    return (t.scale[0] if t.scale else 1.0), (t.zero_point[0] if t.zero_point else 0)


def _align(float_outs: dict, tfl: TfliteModel) -> list[np.ndarray]:
    """The float model's outputs in the .tflite's output order: by name (the converter keeps the Keras
    names as signature keys), else by per-sample shape where that is unambiguous."""
    names, values = tfl.output_names, list(float_outs.values())
    if len(values) != len(names):
        raise ValueError(f"the float model has {len(values)} outputs, the .tflite {len(names)}")
    if len(values) == 1:
        return values
    if set(names) == set(float_outs):
        return [float_outs[n] for n in names]
    want, got = [tuple(t.shape[1:]) for t in tfl.output_tensors], [tuple(v.shape[1:]) for v in values]
    if len(set(got)) != len(got):
        raise ValueError(f"the float model's outputs {list(float_outs)} cannot be matched to the .tflite's "
                         f"{names}: neither names nor shapes tell them apart")
    by_shape = dict(zip(got, values))
    return [by_shape.get(s, v) for s, v in zip(want, values)]
