"""Per-layer channels, parameters and multiply-accumulates (MACs).

MACs count only the layers that dominate int8 inference time: convolutions
(``H_out*W_out*k_h*k_w*C_in/groups*C_out``), depthwise (``H_out*W_out*k_h*k_w*C_in*dm``),
separable (depthwise + pointwise ``H_out*W_out*C_in*dm*C_out``) and Dense
(``in*out``, times the leading positions for a Dense on a sequence).
Element-wise layers, pooling and BatchNormalization (folded by the
converter) count 0. A shared layer's MACs are summed over its calls.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import prod

import keras
from keras import layers as L

from edgepipe.prune.result import Change, LayerChange, Totals
from edgepipe.prune.rules import DEPTHWISES, SEPARABLES
from edgepipe.prune.walk import Call, iter_calls

CONVS = (L.Conv1D, L.Conv2D, L.Conv3D)
TRANSPOSED = (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)


@dataclass(frozen=True)
class LayerStats:
    name: str
    class_name: str
    channels_in: int | None
    channels_out: int | None
    params: int
    macs: int


def model_stats(model: keras.Model) -> dict[str, LayerStats]:
    """Stats of every called leaf layer, by path, in topological order."""
    stats: dict[str, LayerStats] = {}
    for call in iter_calls(model):
        if not isinstance(call.op, L.Layer):
            continue
        macs = call_macs(call)
        if call.path in stats:
            stats[call.path] = replace(stats[call.path], macs=stats[call.path].macs + macs)
            continue
        width_in = call.in_shapes[0][-1] if call.in_shapes and call.in_shapes[0] else None
        width_out = call.out_shapes[0][-1] if call.out_shapes and call.out_shapes[0] else None
        stats[call.path] = LayerStats(
            call.path, type(call.op).__name__, width_in, width_out, call.op.count_params(), macs
        )
    return stats


def call_macs(call: Call) -> int:
    """Multiply-accumulates of one call (0 when shapes are not static)."""
    layer, shapes = call.op, call.in_shapes + call.out_shapes
    if len(shapes) != 2 or any(len(s) < 2 or None in s[1:] for s in shapes):
        return 0
    (_, *in_dims, c_in), (_, *out_dims, c_out) = shapes
    positions = prod(out_dims)
    if isinstance(layer, SEPARABLES):
        mid = c_in * layer.depth_multiplier
        return positions * (prod(layer.kernel_size) * mid + mid * c_out)
    if isinstance(layer, DEPTHWISES):
        return positions * prod(layer.kernel_size) * c_out
    if isinstance(layer, CONVS):
        return positions * prod(layer.kernel_size) * (c_in // layer.groups) * c_out
    if isinstance(layer, TRANSPOSED):
        return prod(in_dims) * prod(layer.kernel_size) * c_in * c_out
    if isinstance(layer, L.Dense):
        return positions * c_in * c_out
    return 0


def compare(before: dict[str, LayerStats], after: dict[str, LayerStats]):
    """Per-layer changes and totals between two models with the same layer names."""
    rows = tuple(_change(old, after.get(name, old)) for name, old in before.items())
    return rows, Totals(_total(before, after, "params"), _total(before, after, "macs"))


def _change(old: LayerStats, new: LayerStats) -> LayerChange:
    numbers = ("channels_in", "channels_out", "params", "macs")
    return LayerChange(
        old.name, old.class_name, *(Change(getattr(old, k), getattr(new, k)) for k in numbers)
    )


def _total(before: dict[str, LayerStats], after: dict[str, LayerStats], key: str) -> Change:
    return Change(*(sum(getattr(s, key) for s in side.values()) for side in (before, after)))
