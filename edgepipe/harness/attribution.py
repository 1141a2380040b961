"""Which Keras layers lose accuracy to quantization, by the names the user gave them.

The int8 model runs on the reference kernels with every intermediate tensor
kept; each Keras layer gets the TFLite tensor that holds its output: tensor
names propose (:func:`tensor_owners`), and a tensor is kept only if its
values fit that layer's float output and no other layer's far better. A
layer folded into another's op (a BatchNorm into a conv, a conv into the
ReLU after it) is listed as fused into the layer that owns the tensor. The
Keras graph is walked twice on the same samples:

- **float**: the float model as trained, giving each layer's *cumulative*
  error (int8 tensor vs float layer output, everything upstream included);
- **local**: each layer fed the *int8 model's own* dequantized inputs, giving
  the error that layer adds by itself (its weights, its output scale).

Layers are ranked by local SQNR: a layer downstream of a bad one inherits its
cumulative error but not its local error, so the culprit comes first.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgepipe.runtimes.quant import dequantize
from edgepipe.tflite.model import Tensor, TfliteModel, parse_tflite
from edgepipe.harness.metrics import ErrorStats, channel_sqnr_db

_SUFFIX = re.compile(r"_\d+$")
_OUTPUT_K = re.compile(r":(\d+)$")
_RESHAPES = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS"})
MARGIN_DB = 10.0  # a tensor belongs to a layer only if no other layer's float output fits it this much better
MATCH_DB = 10.0  # an unnamed tensor is matched by value only to a layer it fits at least this well
SAME_DB = 100.0  # float outputs agreeing this well are the same values (a Dropout and its input)
MATCH_SAMPLES = 16
FLOOR_PCT = 0.01
FAULT_DB = 20.0  # local SQNR under this (relative error over 10%) marks a layer at fault


@dataclass(frozen=True)
class LayerError:
    """One Keras layer's quantization error on the attribution samples.

    ``local_sqnr_db``: int8 output vs the float layer fed the int8 model's inputs
    (what this layer adds); ``sqnr_db``: int8 vs the float model (accumulated);
    ``signal_lsb``: RMS of the float output in output LSBs (below ~4, the
    output scale leaves the signal almost no resolution).
    """

    layer: str
    kind: str
    tensor: str
    dtype: str
    scale: float | None
    local_sqnr_db: float
    sqnr_db: float
    relative_l2: float
    max_abs: float
    signal_lsb: float | None
    fused: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fused"] = list(self.fused)
        return {k: (round(v, 4) if isinstance(v, float) and np.isfinite(v) else v) for k, v in d.items()}

    def summary(self) -> str:
        fused = f" (with {', '.join(self.fused)})" if self.fused else ""
        lsb = f", signal {self.signal_lsb:.1f} LSB" if self.signal_lsb is not None else ""
        scale = f", output scale {self.scale:.4g}" if self.scale else ""
        return f"{self.layer}{fused}: local SQNR {_db(self.local_sqnr_db)}{scale}{lsb}"


@dataclass
class Attribution:
    """Per-layer errors in model order, and what could not be matched."""

    layers: list[LayerError]
    samples: int
    unmatched_layers: list[str] = field(default_factory=list)
    note: str = ""

    def worst(self, n: int = 3) -> list[LayerError]:
        return sorted(self.layers, key=lambda e: e.local_sqnr_db)[:n]

    def at_fault(self, below_db: float = FAULT_DB, n: int = 3) -> list[LayerError]:
        """Up to ``n`` worst layers whose local SQNR is under ``below_db`` (may be none)."""
        return [e for e in self.worst(n) if e.local_sqnr_db < below_db]

    def blamed(self) -> tuple[str, list[LayerError]]:
        """("layers at fault", those) or, when none is under the threshold, the worst one."""
        fault = self.at_fault()
        return ("layers at fault", fault) if fault else ("largest quantization error", self.worst(1))

    def to_dict(self, top: int = 5) -> dict:
        return {"samples": self.samples, "ranked_by": "local_sqnr_db (lower is worse)",
                "worst": [e.layer for e in self.worst(top)], "at_fault": [e.layer for e in self.at_fault()],
                "layers": [e.to_dict() for e in self.layers],
                "unmatched_layers": self.unmatched_layers, **({"note": self.note} if self.note else {})}


def attribute(model, tflite_bytes: bytes, x: np.ndarray) -> Attribution:
    """Per-layer error of the .tflite against the Keras ``model`` on float samples ``x``."""
    tfl = parse_tflite(tflite_bytes)
    graph = getattr(model, "_functional", None) or model
    if not hasattr(graph, "_nodes_by_depth"):
        return Attribution([], len(x), note="not a functional or sequential Keras model: no per-layer figures")
    floats = _walk(graph, x)
    m = _map_layers(model, graph, tfl, tflite_bytes, x, floats)
    x_int = m.values[m.input.index].reshape(x.shape)
    anchors = {n: m.values[i].reshape(floats[n].shape) for n, i in m.chosen.items()}
    local = _walk(graph, x_int, anchors)
    errors = [_input_error(graph, m.input, x, x_int)]
    for layer in model.layers:
        if layer.name in m.chosen:
            t = tfl.tensors[m.chosen[layer.name]]
            errors.append(_layer_error(layer, t, floats[layer.name], local[layer.name],
                                       anchors[layer.name], m.fused.get(layer.name, ())))
    return Attribution([e for e in errors if e is not None], len(x), m.unmatched, m.note)


@dataclass(frozen=True)
class _Mapping:
    """Layer -> its tensor index (``chosen``), layers folded into each, those with neither, and the
    dequantized tensors of one int8 run (per sample, flattened) they were read from."""

    chosen: dict[str, int]
    fused: dict[str, tuple[str, ...]]
    unmatched: list[str]
    note: str
    values: dict[int, np.ndarray]
    input: Tensor  # the model input as quantized


def _map_layers(model, graph, tfl: TfliteModel, tflite_bytes: bytes, x: np.ndarray, floats: dict) -> _Mapping:
    """Names propose each layer's tensor, one int8 run's values confirm it, identity layers take it over."""
    from edgepipe.runtimes.litert import intermediates

    order = [layer.name for layer in model.layers]
    owners = tensor_owners(tfl, order, _output_layers(graph))
    cands = _tensor_per_layer(tfl, owners, _mentions(tfl, order), floats)
    spare = _spare_tensors(tfl, owners, cands, floats)
    inp = _quantized_input(tfl)
    got = intermediates(tflite_bytes, x, sorted({*(i for c in cands.values() for i in c), *spare, inp.index}))
    deq = {i: _dequantize(tfl.tensors[i], v).reshape(len(x), -1) for i, v in got.items()}
    chosen, refused, notes = _validate(cands, deq, floats)
    chosen.update(_match_by_value(tfl, [*spare, *refused], chosen, deq, floats))
    consumers = _consumers(graph)
    _extend_identities(chosen, deq, floats, consumers)
    inner = [n for n in order if type(model.get_layer(n)).__name__ != "InputLayer"]
    fused = _fused_names(inner, chosen, cands, consumers)
    folded = {n for names in fused.values() for n in names}
    unmatched = [n for n in inner if n not in chosen and n not in folded]
    return _Mapping(chosen, fused, unmatched, "; ".join(notes), deq, inp)


# ----------------------------------------------------------------- TFLite names -> Keras layers

def tensor_owners(tfl: TfliteModel, layer_order: list[str], output_layers: list[str] | None = None) -> dict[int, str]:
    """Activation tensor index -> the Keras layer that produced it, read from tensor names alone.

    A tensor fusing several layers' ops (``tiny_1/bn_1/batchnorm/add_1;tiny_1/conv_1/convolution``)
    belongs to the *last* of them in model order: a BatchNorm and ReLU folded into
    a conv are owned by the ReLU's layer. The converter renames model outputs
    (``StatefulPartitionedCall_1:0``): they belong to ``output_layers`` (the
    Keras outputs' layers, in order; by default the last layer of a
    single-output model). Names cannot tell a layer folded in without a trace
    (a Lambda scaling a conv's output): :func:`attribute` checks values too.
    """
    pos = {name: i for i, name in enumerate(layer_order)}
    owners = {i: max(names, key=pos.__getitem__) for i, names in _mentions(tfl, layer_order).items()}
    if output_layers is None:
        output_layers = layer_order[-1:] if len(tfl.outputs) == 1 else []
    if len(output_layers) == len(tfl.outputs):
        producers = tfl.producers()
        for idx, name in zip(_outputs_in_order(tfl), output_layers):
            owners.setdefault(idx, name)
            if idx in producers and producers[idx].op == "DEQUANTIZE" and owners[idx] == name:
                owners.setdefault(producers[idx].inputs[0], name)  # float outputs: the int tensor before
    _carry_reshapes(tfl, owners, pos)
    _adopt_unnamed(tfl, owners)
    return owners


def _outputs_in_order(tfl: TfliteModel) -> list[int]:
    """The model's output tensors in Keras order: renamed ``StatefulPartitionedCall_1:<k>`` by position ``k``.

    The subgraph may list them in another order (``:1`` before ``:0`` seen).
    """
    found = [_OUTPUT_K.search(tfl.tensors[i].name) for i in tfl.outputs]
    ks = [int(m.group(1)) for m in found if m]
    if sorted(ks) != list(range(len(tfl.outputs))):
        return list(tfl.outputs)
    return [i for _, i in sorted(zip(ks, tfl.outputs))]


def _mentions(tfl: TfliteModel, layer_order: list[str]) -> dict[int, tuple[str, ...]]:
    """Produced tensor -> the layers whose scopes its name contains.

    Names are TF scope paths, fused ops joined by ';'. In each part the first
    component naming a layer is that layer's scope; the rest are op names
    (``bn_1/batchnorm/add_1`` must not read as a layer called ``add``). Keras 3
    suffixes scopes (``conv_1``; ``conv2d_1_2`` for a layer ``conv2d_1``):
    the reading, suffix stripped or not, that finds more layers wins.
    """
    known, producers = set(layer_order), tfl.producers()
    produced = [t for t in tfl.tensors if t.index in producers]
    best: dict[int, tuple[str, ...]] = {}
    for strip in (True, False):
        found = {t.index: names for t in produced if (names := _scopes(t.name, known, strip))}
        if len({n for v in found.values() for n in v}) > len({n for v in best.values() for n in v}):
            best = found
    return best


def _scopes(name: str, known: set[str], strip: bool) -> tuple[str, ...]:
    out = []
    for part in name.split(";"):
        hit = next((n for c in part.split("/") if (n := _SUFFIX.sub("", c) if strip else c) in known), None)
        if hit and hit not in out:
            out.append(hit)
    return tuple(out)


def _carry_reshapes(tfl: TfliteModel, owners: dict[int, str], pos: dict[str, int]) -> None:
    """A reshape keeping every non-unit dimension carries its input's values: the later layer owns it.

    Conv1D runs as a 2-D conv between reshapes; the closing squeeze, named
    after the conv, holds the output of a BatchNorm and ReLU fused into it.
    """
    for op in tfl.operators:
        src, out = owners.get(op.inputs[0]) if op.inputs else None, op.outputs[0] if op.outputs else -1
        if (op.op in _RESHAPES and src and out >= 0
                and _core(tfl.tensors[out].shape) == _core(tfl.tensors[op.inputs[0]].shape)
                and (out not in owners or pos[src] > pos[owners[out]])):
            owners[out] = src


def _adopt_unnamed(tfl: TfliteModel, owners: dict[int, str]) -> None:
    """An unnamed op that alone consumes a layer's tensor, same shape out, belongs to that layer.

    Float fallback wraps an op in DEQUANTIZE/QUANTIZE named ``tfl.quantize``:
    the QUANTIZE is the layer's int8 output; the DEQUANTIZE only a float copy
    of the int8 tensor before it, which stays the earlier layer's output.
    (Model outputs are named by :func:`tensor_owners` before this runs: the
    SOFTMAX after a GlobalAveragePooling2D belongs to the softmax layer.)
    """
    consumers: dict[int, int] = {}
    for op in tfl.operators:
        for i in op.inputs:
            consumers[i] = consumers.get(i, 0) + 1
    for op in tfl.operators:  # execution order, so chains extend
        named = [i for i in op.inputs if i in owners]
        outs = [o for o in op.outputs if o >= 0]
        if (op.op != "DEQUANTIZE" and len(named) == 1 and consumers[named[0]] == 1 and outs
                and all(o not in owners and tfl.tensors[o].shape == tfl.tensors[named[0]].shape for o in outs)):
            for o in outs:
                owners[o] = owners[named[0]]


def _tensor_per_layer(tfl: TfliteModel, owners: dict[int, str], mentions: dict, floats: dict) -> dict[str, list[int]]:
    """Each layer's candidate output tensors, best first: those it owns with its output's shape.

    A tensor that names a layer but belongs to a later one (the layer was
    folded into it) makes the layer's earlier tensors internal: the
    depthwise half of a SeparableConv2D whose pointwise conv absorbed a
    BatchNorm is not the separable layer's output. A DEQUANTIZE of a
    layer's own tensor is only its float copy. See :func:`_preferred` for the order.
    """
    cands: dict[str, list[int]] = {}
    for op in tfl.operators:  # execution order
        for idx in (o for o in op.outputs if o >= 0):
            for name in mentions.get(idx, ()):
                if owners.get(idx) != name:
                    cands[name] = []
            name = owners.get(idx)
            if (name in floats and _core(tfl.tensors[idx].shape) == _core(floats[name].shape[1:])
                    and not (op.op == "DEQUANTIZE" and owners.get(op.inputs[0]) == name)):
                cands.setdefault(name, []).append(idx)
    readers: dict[int, list] = {}
    for op in tfl.operators:
        for i in op.inputs:
            readers.setdefault(i, []).append(op)
    return {n: _preferred(c, owners, readers, tfl.outputs) for n, c in cands.items() if c}


def _preferred(idxs: list[int], owners: dict[int, str], readers: dict[int, list], outputs) -> list[int]:
    """A layer's tensors: first those other layers read (earliest first), then internal ones (latest first).

    Dense(activation="softmax") owns the FULLY_CONNECTED output, read only by
    its own SOFTMAX; a Multiply read by two layers may own its MUL output and
    a requantized copy for one reader: its output is the MUL's.
    """
    def read_outside(i: int) -> bool:
        return i in outputs or not readers.get(i) or any(
            owners.get(o) != owners[i] for op in readers[i] for o in op.outputs if o >= 0)
    out = [i for i in idxs if read_outside(i)]
    return out + [i for i in reversed(idxs) if i not in out]


def _spare_tensors(tfl: TfliteModel, owners: dict, cands: dict, floats: dict) -> list[int]:
    """Unnamed activation tensors shaped like the output of a layer that has no candidate."""
    wanted = {_core(v.shape[1:]) for n, v in floats.items() if n not in cands}
    return [i for i in tfl.producers() if i not in owners and _core(tfl.tensors[i].shape) in wanted]


def _fused_names(order: list[str], chosen: dict[str, int], cands: dict, consumers: dict) -> dict:
    """For each layer with a tensor, the layers folded into it: its figures include their error.

    A layer without a tensor whose single path downstream reaches a layer
    with one before any branch is computed inside that tensor's op(s); a
    layer whose own tensors were refused (see :func:`_validate`) is not.
    """
    out: dict[str, list[str]] = {}
    for name in order:
        if name in chosen:
            continue
        cur = name
        while cur not in chosen and len(consumers.get(cur, ())) == 1:
            cur = consumers[cur][0]
        if cur in chosen and (name not in cands or chosen[cur] in cands[name]):
            out.setdefault(cur, []).append(name)
    return {n: tuple(v) for n, v in out.items()}


def _quantized_input(tfl: TfliteModel) -> Tensor:
    """The input as the int8 model sees it: the model input, or for a float input its QUANTIZE op's output."""
    first = tfl.input_tensors[0]
    if first.scale:
        return first
    quant = [op for op in tfl.operators if op.op == "QUANTIZE" and op.inputs[:1] == (first.index,)]
    return tfl.tensors[quant[0].outputs[0]] if len(quant) == 1 else first


def _dequantize(t, v: np.ndarray) -> np.ndarray:
    return dequantize(v, t.scale[0], t.zero_point[0]) if t.scale else np.asarray(v, np.float32)


def _core(shape) -> tuple[int, ...]:
    """A shape without its unit dimensions: reshapes that add or drop those keep values in place."""
    return tuple(int(d) for d in shape if d != 1)


# ----------------------------------------------------------------- checking names against values

def _validate(cands: dict, deq: dict, floats: dict) -> tuple[dict[str, int], list[int], list[str]]:
    """Each layer's first candidate (see :func:`_preferred`) that no other layer's float output fits far better.

    Names can mislead (a scaling folded into a conv leaves only the conv's
    name on a tensor holding the scaled values). A tensor that another
    layer computing different values fits :data:`MARGIN_DB` better is
    refused and offered to the layers that have none.
    """
    chosen, refused, notes = {}, [], []
    for name, idxs in cands.items():
        for idx in idxs:
            own, core = _fit(floats[name], deq[idx]), _core(floats[name].shape[1:])
            rival = max(((_fit(f, deq[idx]), other) for other, f in floats.items() if other != name
                         and _core(f.shape[1:]) == core and not _same(floats[name], f)), default=None)
            if rival is None or rival[0] <= own + MARGIN_DB:
                chosen[name] = idx
                break
            refused.append(idx)
            notes.append(f"{name}: its tensor agrees with {rival[1]} ({rival[0]:.1f} dB), not with it "
                         f"({own:.1f} dB)")
    return chosen, refused, notes


def _match_by_value(tfl: TfliteModel, spare: list[int], chosen: dict, deq: dict, floats: dict) -> dict[str, int]:
    """Tensors no name placed, each given to a layer without one that it fits well and far better than any other."""
    found: dict[str, tuple[float, int]] = {}
    for idx in spare:
        core = _core(tfl.tensors[idx].shape)
        fits = sorted(((_fit(f, deq[idx]), n) for n, f in floats.items() if _core(f.shape[1:]) == core), reverse=True)
        if not fits or fits[0][1] in chosen or fits[0][0] < MATCH_DB:
            continue
        best, name = fits[0]
        rival = next((s for s, n in fits[1:] if not _same(floats[name], floats[n])), -np.inf)
        if rival <= best - MARGIN_DB and best > found.get(name, (-np.inf, 0))[0]:
            found[name] = (best, idx)
    return {n: idx for n, (_, idx) in found.items()}


def _extend_identities(chosen: dict[str, int], deq: dict, floats: dict, consumers: dict) -> None:
    """Hand each tensor down to the last layer whose output it equals as far as int8 can tell.

    A Dropout, a ReLU after a Dense(activation="relu"), or a BatchNorm
    close to identity that the converter folded without a trace leaves no
    op: when the next layer (single reader, no tensor) computes values
    closer to the current one's than the tensor's own precision
    (:data:`MARGIN_DB`), the tensor is its output too, and the layer before
    is listed as fused into it.
    """
    for name in list(chosen):
        cur, idx = name, chosen[name]
        while len(consumers.get(cur, ())) == 1:
            nxt = consumers[cur][0]
            if (nxt in chosen or nxt not in floats or floats[nxt].size != floats[cur].size
                    or _fit(floats[cur], floats[nxt]) < _fit(floats[cur], deq[idx]) + MARGIN_DB):
                break
            cur = nxt
        if cur != name:
            chosen[cur] = chosen.pop(name)


def _fit(ref: np.ndarray, test: np.ndarray) -> float:
    """SQNR of ``test`` against ``ref`` (same values per sample) on the first :data:`MATCH_SAMPLES` samples.

    A few samples tell layers apart; all of them would cost a comparison per
    pair of same-shaped layers on large models.
    """
    ref = ref[:MATCH_SAMPLES]
    return channel_sqnr_db(ref, test[:MATCH_SAMPLES].reshape(ref.shape))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Two layers' float outputs hold the same values (a Dropout and its input)."""
    return a.size == b.size and _fit(a, b) >= SAME_DB


# ----------------------------------------------------------------- the Keras graph

def _walk(graph, x: np.ndarray, anchors: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Each single-output layer's output on ``x``.

    Without ``anchors``, the float model. With them (the int8 model's
    dequantized input as ``x`` and its tensors by layer), the local replay:
    each layer computes from its inputs, then downstream layers continue
    from the int8 tensor where the layer has one.
    """
    anchors = anchors or {}
    values = {id(graph.inputs[0]): x}
    out: dict[str, np.ndarray] = {}
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            if node.is_input or not node.operation:
                continue
            name = node.operation.name
            got = _call(node, values)
            for kt, v in zip(node.outputs, got):
                values[id(kt)] = v
            if len(node.outputs) == 1:
                out[name] = got[0]
                if name in anchors:
                    values[id(node.outputs[0])] = anchors[name]
    return out


def _call(node, values: dict) -> list[np.ndarray]:
    args, kwargs = node.arguments.fill_in(values)
    out = node.operation(*args, **kwargs)
    outs = list(out.values()) if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(o, np.float32) for o in outs]


def _consumers(graph) -> dict[str, list[str]]:
    """Layer name -> the layers reading its output (each once)."""
    out: dict[str, list[str]] = {}
    for nodes in graph._nodes_by_depth.values():
        for node in nodes:
            if node.is_input or not node.operation:
                continue
            for kt in node.input_tensors:
                readers = out.setdefault(kt._keras_history.operation.name, [])
                if node.operation.name not in readers:
                    readers.append(node.operation.name)
    return out


def _output_layers(graph) -> list[str]:
    return [kt._keras_history.operation.name for kt in graph.outputs]


def _layer_error(layer, t, float_v, local_v, int_v, fused) -> LayerError:
    stats = ErrorStats()
    stats.update(local_v, int_v)
    r = stats.result()
    scale = float(t.scale[0]) if t.scale else None
    return LayerError(layer.name, type(layer).__name__, t.name, t.dtype, scale, channel_sqnr_db(local_v, int_v),
                      channel_sqnr_db(float_v, int_v), r["relative_l2"], r["max_abs"], _signal_lsb(float_v, scale),
                      tuple(fused))


def _signal_lsb(v: np.ndarray, scale: float | None) -> float | None:
    """Median over channels of the channel's RMS, in output LSBs."""
    if not scale:
        return None
    v = np.asarray(v, np.float64)
    rms = np.sqrt(np.mean(v.reshape(-1, v.shape[-1] if v.ndim > 1 else 1) ** 2, axis=0))
    return float(np.median(rms)) / scale


def _input_error(graph, t, x: np.ndarray, x_int: np.ndarray) -> LayerError | None:
    """The model input's own quantization (a wrong calibration range shows here)."""
    if not t.scale:
        return None
    name = graph.inputs[0]._keras_history[0].name if hasattr(graph.inputs[0], "_keras_history") else "input"
    scale = float(t.scale[0])
    stats = ErrorStats()
    stats.update(x, x_int)
    r = stats.result()
    db = channel_sqnr_db(x, x_int)
    return LayerError(name, "InputLayer", t.name, t.dtype, scale, db, db, r["relative_l2"], r["max_abs"],
                      _signal_lsb(x, scale))


def _db(v: float) -> str:
    return f"{v:.1f} dB" if np.isfinite(v) else ("exact" if v > 0 else "-inf dB")


# ----------------------------------------------------------------- the plot

def plot(attr: Attribution, path: Path, title: str = "") -> Path:
    """Bars of each layer's relative error (local and cumulative), log scale, longest = worst (PNG)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from edgepipe.emit.files import write_atomic

    names = [e.layer for e in attr.layers]
    worst = {e.layer for e in attr.worst(1)}
    fig = Figure(figsize=(7, 1.2 + 0.32 * max(len(names), 1)), dpi=100)
    ax = fig.subplots()
    ys = np.arange(len(names))
    ax.barh(ys - 0.2, [relative_error_pct(e.local_sqnr_db) for e in attr.layers], 0.4,
            label="local: error this layer adds", color=["#c0392b" if n in worst else "#2e86c1" for n in names])
    ax.barh(ys + 0.2, [relative_error_pct(e.sqnr_db) for e in attr.layers], 0.4,
            label="cumulative: vs the float model", color="#aab7b8")
    ax.set_xscale("log")
    ax.set_xlim(FLOOR_PCT, 200)
    ax.set_yticks(ys, names)
    ax.invert_yaxis()
    ax.set_xlabel("relative RMS error per channel, % (10^(-SQNR/20); longer is worse)")
    ax.set_title(title or f"Per-layer quantization error ({attr.samples} samples)", pad=24)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2, fontsize="small", frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return write_atomic(path, buf.getvalue())


def relative_error_pct(sqnr: float) -> float:
    """Relative RMS error in percent for an SQNR in dB, clipped to the plot's range."""
    return float(np.clip(100.0 * 10 ** (-sqnr / 20.0), FLOOR_PCT, 200.0))
