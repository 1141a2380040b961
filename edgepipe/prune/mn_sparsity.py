"""n:m sparsity (e.g. 2:4): in every block of ``m`` consecutive input weights of
a Conv/Dense kernel, only the ``n`` largest are kept.

Stated plainly, because it is easy to expect more: the zeros stay in a dense
tensor, so a dense ``.tflite`` has the same size and the same int8 latency on
LiteRT/XNNPACK and TFLite Micro. Only sparse-aware hardware or a compressing
toolchain (Vela's weight compression) turns the zeros into savings. Channel
pruning is the method that shrinks and speeds up every runtime.

Masks are attached to the kernels as variable constraints; Keras applies
constraints after every optimizer step, so any later training (``finetune``
or ``model.fit``) keeps the pattern. tensorflow-model-optimization is not
used: it only works with legacy Keras 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from edgepipe.errors import ConfigError
from edgepipe.prune.channel import default_exclude
from edgepipe.prune.graph import DependencyGraph
from edgepipe.prune.rebuild import rebuild
from edgepipe.prune.result import KeptLayer, to_jsonable
from edgepipe.prune.rules import PRODUCERS, SEPARABLES
from edgepipe.prune.settings import PruneSettings, check_layer_names
from edgepipe.prune.walk import leaf_layers

DENSE_OUTPUT_NOTE = (
    "n:m sparsity zeroes weights but every tensor stays dense: the .tflite has the same "
    "size and the same int8 latency on LiteRT/XNNPACK and TFLite Micro. Only sparse-aware "
    "hardware or compressing toolchains (Vela weight compression) gain from the zeros."
)


class MnMask(keras.constraints.Constraint):
    """Multiplies a kernel by a fixed 0/1 mask after every optimizer step."""

    def __init__(self, mask: np.ndarray, inner=None):
        self.mask = mask.astype("float32")
        self.inner = inner

    def __call__(self, w):
        w = self.inner(w) if self.inner is not None else w
        return w * keras.ops.convert_to_tensor(self.mask, dtype=w.dtype)


@dataclass(frozen=True)
class LayerSparsity:
    name: str
    weight: str
    weights: int
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.weights if self.weights else 0.0


@dataclass(frozen=True)
class MnResult:
    """What n:m sparsity did; ``model`` is a masked copy of the input model."""

    model: Any = field(repr=False, compare=False, metadata={"report": False})
    method: str
    n: int
    m: int
    settings: dict
    exclude: tuple[str, ...]
    layers: tuple[LayerSparsity, ...]
    skipped: tuple[KeptLayer, ...]
    statement: str = DENSE_OUTPUT_NOTE

    @property
    def sparsity(self) -> float:
        """Zero fraction over the masked kernels."""
        total = sum(layer.weights for layer in self.layers)
        return sum(layer.zeros for layer in self.layers) / total if total else 0.0

    def to_dict(self) -> dict:
        data = to_jsonable(self)
        for row, layer in zip(data["layers"], self.layers):
            row["sparsity"] = layer.sparsity
        data["sparsity"] = self.sparsity
        return data


def mn_mask(kernel: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep the ``n`` largest |w| of every ``m`` consecutive inputs (axis -2).

    A last, shorter block keeps its ``n`` largest too (all of it when it has
    at most ``n`` weights)."""
    mags = np.moveaxis(np.abs(kernel), -2, -1)
    width = mags.shape[-1]
    pad = np.full(mags.shape[:-1] + ((-width) % m,), -1.0)
    blocks = np.concatenate([mags, pad], axis=-1).reshape(*mags.shape[:-1], -1, m)
    order = np.argsort(-blocks, axis=-1, kind="stable")
    mask = np.zeros(blocks.shape, dtype=bool)
    np.put_along_axis(mask, order[..., :n], True, axis=-1)
    return np.moveaxis(mask.reshape(*mags.shape[:-1], -1)[..., :width], -1, -2)


def apply_mn_sparsity(model: keras.Model, settings: PruneSettings) -> MnResult:
    """A copy of ``model`` with n:m masks on every eligible kernel."""
    if settings.method != "mn":
        raise ConfigError(
            "prune.method",
            f"apply_mn_sparsity does n:m sparsity, but method is {settings.method!r}",
            fix="call prune_model for method: channel",
        )
    graph = DependencyGraph(model)
    check_layer_names(settings, graph.layer_names)
    exclude = default_exclude(graph, settings.prune_first) if settings.exclude is None else tuple(settings.exclude)
    copy = rebuild(model, {})
    rows, skipped = [], []
    for path, layer in leaf_layers(copy).items():
        reason = _ineligible(path, layer, exclude, settings.m)
        if reason is None:
            rows.append(_mask_layer(path, layer, settings.n, settings.m))
        elif reason:
            skipped.append(KeptLayer(path, reason))
    return MnResult(
        model=copy, method="mn", n=settings.n, m=settings.m, settings=settings.to_dict(),
        exclude=exclude, layers=tuple(rows), skipped=tuple(skipped),
    )


def _kernel_name(layer) -> str | None:
    if type(layer) in PRODUCERS and getattr(layer, "groups", 1) == 1:
        return "kernel"
    return "pointwise_kernel" if type(layer) in SEPARABLES else None


def _ineligible(path: str, layer, exclude: tuple[str, ...], m: int) -> str | None:
    """None if eligible; a reason to report; "" for layers without a kernel."""
    name = _kernel_name(layer)
    if name is None:
        return ""
    if any(path == e or path.startswith(e + "/") for e in exclude):
        return "excluded"
    variable = next(w for w in layer.weights if w.name == name)
    if variable.shape[-2] < m:
        return f"{variable.shape[-2]} inputs, fewer than m={m}"
    return None


def _mask_layer(path: str, layer, n: int, m: int) -> LayerSparsity:
    name = _kernel_name(layer)
    variable = next(w for w in layer.weights if w.name == name)
    mask = mn_mask(np.asarray(variable.numpy()), n, m)
    variable.assign(np.asarray(variable.numpy()) * mask)
    variable.constraint = MnMask(mask, variable.constraint)
    zeros = int(np.sum(np.asarray(variable.numpy()) == 0))
    return LayerSparsity(path, name, int(mask.size), zeros)
