"""Which Keras layers lose accuracy to quantization, by the names the user gave them.

The int8 model runs on the reference kernels with every intermediate tensor
kept; each TFLite activation tensor is mapped back to the Keras layer that
produced it (:func:`tensor_owners`), and the Keras graph is walked twice on
the same samples:

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
from edgepipe.tflite.model import TfliteModel, parse_tflite
from edgepipe.harness.metrics import ErrorStats, channel_sqnr_db

_SUFFIX = re.compile(r"_\d+$")
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
    from edgepipe.runtimes.litert import intermediates

    tfl = parse_tflite(tflite_bytes)
    graph = getattr(model, "_functional", None) or model
    if not hasattr(graph, "_nodes_by_depth"):
        return Attribution([], len(x), note="not a functional or sequential Keras model: no per-layer figures")
    layers = [layer for layer in model.layers]
    order = [layer.name for layer in layers]
    owners = tensor_owners(tfl, order)
    chosen = _tensor_per_layer(tfl, owners, {layer.name: layer for layer in layers})
    values = intermediates(tflite_bytes, x, sorted({*chosen.values(), *tfl.inputs}))
    deq = {i: _dequantize(tfl.tensors[i], v) for i, v in values.items()}
    inp_t = tfl.input_tensors[0]
    float_vals, local_vals = _walk(graph, x, deq[inp_t.index], {n: deq[i] for n, i in chosen.items()})
    errors = [_input_error(graph, inp_t, x, deq[inp_t.index])]
    fused = _fused_names(tfl, owners, chosen, order)
    for layer in layers:
        if layer.name not in chosen or layer.name not in float_vals:
            continue
        t = tfl.tensors[chosen[layer.name]]
        errors.append(_layer_error(layer, t, float_vals[layer.name], local_vals[layer.name],
                                   deq[t.index], fused.get(layer.name, ())))
    unmatched = [n for n in order if n not in chosen and not any(n in f for f in fused.values())
                 and type(model.get_layer(n)).__name__ != "InputLayer"]
    return Attribution([e for e in errors if e is not None], len(x), unmatched)


# ----------------------------------------------------------------- TFLite names -> Keras layers

def tensor_owners(tfl: TfliteModel, layer_order: list[str]) -> dict[int, str]:
    """Activation tensor index -> the Keras layer that produced it.

    TFLite names are TF scope paths, fused ops joined by ';'
    (``tiny_1/conv_1/Relu;tiny_1/bn_1/batchnorm/add_1;...``), where Keras 3
    adds ``_1`` to each scope. A tensor belongs to the *last* layer (in model
    order) named in it: a BatchNorm and ReLU folded into a conv are owned by
    the ReLU's layer.
    """
    pos = {name: i for i, name in enumerate(layer_order)}
    producers = tfl.producers()
    comps = {t.index: {c for part in t.name.split(";") for c in part.split("/")}
             for t in tfl.tensors if t.index in producers}
    best: dict[int, str] = {}
    for strip in (True, False):  # which naming the converter used: whichever matches more layers
        found = {}
        for idx, names in comps.items():
            cands = [n for c in names if (n := _SUFFIX.sub("", c) if strip else c) in pos]
            if cands:
                found[idx] = max(cands, key=pos.__getitem__)
        if len(set(found.values())) > len(set(best.values())):
            best = found
    _adopt_unnamed(tfl, best)
    return best


def _adopt_unnamed(tfl: TfliteModel, owners: dict[int, str]) -> None:
    """An unnamed op that alone consumes a layer's tensor, same shape out, belongs to that layer.

    A Dense with ``activation="softmax"`` becomes FULLY_CONNECTED (named after
    the layer) then SOFTMAX, whose output carries only the signature's name.
    """
    consumers: dict[int, int] = {}
    for op in tfl.operators:
        for i in op.inputs:
            consumers[i] = consumers.get(i, 0) + 1
    for op in tfl.operators:  # execution order, so chains extend
        named = [i for i in op.inputs if i in owners]
        outs = [o for o in op.outputs if o >= 0]
        if (len(named) == 1 and consumers[named[0]] == 1 and outs and all(o not in owners for o in outs)
                and all(tfl.tensors[o].shape == tfl.tensors[named[0]].shape for o in outs)):
            for o in outs:
                owners[o] = owners[named[0]]


def _tensor_per_layer(tfl: TfliteModel, owners: dict[int, str], layers: dict) -> dict[str, int]:
    """Each layer's output tensor: the last one it owns whose shape matches its Keras output."""
    out: dict[str, int] = {}
    producers = tfl.producers()
    for idx in sorted(owners, key=lambda i: producers[i].index):
        layer = layers[owners[idx]]
        try:
            want = tuple(layer.output.shape[1:])
        except (AttributeError, ValueError):
            continue
        if tuple(tfl.tensors[idx].shape[1:]) == tuple(d if d is not None else -1 for d in want):
            out[layer.name] = idx
    return out


def _fused_names(tfl: TfliteModel, owners: dict[int, str], chosen: dict[str, int], order: list[str]) -> dict:
    """For each layer with a tensor, the other layers named in it that have none (folded in)."""
    out = {}
    for name, idx in chosen.items():
        names = {n for n in order if n != name and n not in chosen and
                 any(_SUFFIX.sub("", c) == n or c == n for part in tfl.tensors[idx].name.split(";")
                     for c in part.split("/"))}
        if names:
            out[name] = tuple(n for n in order if n in names)
    return out


def _dequantize(t, v: np.ndarray) -> np.ndarray:
    return dequantize(v, t.scale[0], t.zero_point[0]) if t.scale else np.asarray(v, np.float32)


# ----------------------------------------------------------------- the two walks over the Keras graph

def _walk(graph, x: np.ndarray, x_int: np.ndarray, int_outputs: dict[str, np.ndarray]):
    """(float outputs, locally replayed outputs) per layer name."""
    float_d = {id(graph.inputs[0]): x}
    anchored = {id(graph.inputs[0]): x_int}
    float_out: dict[str, np.ndarray] = {}
    local_out: dict[str, np.ndarray] = {}
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            if node.is_input or not node.operation:
                continue
            name = node.operation.name
            f = _call(node, float_d)
            loc = _call(node, anchored)
            for kt, fv, lv in zip(node.outputs, f, loc):
                float_d[id(kt)] = fv
                anchored[id(kt)] = lv
            if len(node.outputs) == 1:
                float_out[name], local_out[name] = f[0], loc[0]
                if name in int_outputs:
                    anchored[id(node.outputs[0])] = int_outputs[name]
    return float_out, local_out


def _call(node, values: dict) -> list[np.ndarray]:
    args, kwargs = node.arguments.fill_in(values)
    out = node.operation(*args, **kwargs)
    outs = list(out.values()) if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(o, np.float32) for o in outs]


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
