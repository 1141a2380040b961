"""Layer-wise least-squares reconstruction after channel pruning (ThiNet; He et al. 2017).

A layer that read the removed channels now computes its outputs from fewer
inputs. Before its activation it is linear (``y = x W + b``), so the weights
that make its outputs on real inputs closest to what the original layer
computed from the full inputs solve a least-squares problem, in closed form:
no labels, no training loop, only inputs. Layers are refit in topological
order, each on the inputs the already-refit pruned model feeds it, so a layer
also absorbs what earlier ones could not match (He et al.'s sequential form).

The fit is a ridge regression pulled toward the current (sliced original)
weights, ``min |X W + b - Y|^2 + lam |W - W0|^2``: with few samples or
collinear inputs it stays where it was instead of blowing up.

Refit: Dense, Conv1D and Conv2D (a convolution is a Dense applied to the
k x k x C patch at every output position). Other layers that mix channels
(separable, 3-D, grouped or causal convolutions) and shared layers are listed
as skipped, with why; layers of nested models are not refit.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

REFIT = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D)
#: Layers that mix input channels: the only ones whose refit can matter (BN, depthwise are channel-wise).
MIXING = (*REFIT, keras.layers.Conv3D, keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)


@dataclass(frozen=True)
class Reconstruction:
    """What was refit: per layer the relative residual ``|XW+b-Y|^2 / |Y-mean|^2`` before and after."""

    layers: dict[str, dict]
    skipped: dict[str, str]
    samples: int
    rows: int

    def to_dict(self) -> dict:
        return {"layers": self.layers, "skipped": self.skipped, "samples": self.samples,
                "rows_per_layer": self.rows, "method": "least-squares refit of the layers that read pruned "
                "channels, to the unpruned model's outputs (ridge toward the pruned weights)"}


def reconstruct(pruned: keras.Model, original: keras.Model, x, kept_indices: dict, max_samples: int = 1024,
                max_rows: int = 20000, ridge: float = 1e-3, seed: int = 0) -> Reconstruction:
    """Refit, in place, every top-level layer of ``pruned`` whose input channels were pruned.

    ``kept_indices``: ``PruneResult.kept_indices`` (path -> kept positions per channel vector);
    ``x``: unlabeled inputs (an array, or Samples for several inputs), the first ``max_samples`` used."""
    from edgepipe.data.samples import as_float32, order_for
    from edgepipe.keras_io.names import input_names

    arrays = order_for(as_float32(x[:max_samples]), input_names(pruned), f"model {pruned.name!r}")
    done, skipped = {}, {}
    for index, layer in enumerate(pruned.layers):
        kept = kept_indices.get(layer.name)
        if not isinstance(layer, MIXING) or kept is None or len(kept["in"]) == _in_width(layer, original):
            continue
        why = _unsupported(layer)
        if why:
            skipped[layer.name] = why
            continue
        source = original.get_layer(layer.name)
        x_p = _rows(pruned, layer, arrays, np.random.default_rng((seed, index)), max_rows)
        x_o = _rows(original, source, arrays, np.random.default_rng((seed, index)), max_rows)  # same positions
        done[layer.name] = _refit(layer, source, x_p, x_o, kept, ridge)
    return Reconstruction(done, skipped, int(len(arrays[0])), int(max_rows))


def _in_width(layer, original: keras.Model) -> int:
    """How many input channels the layer of the same name had before pruning."""
    return int(original.get_layer(layer.name).input.shape[-1])


def _unsupported(layer) -> str | None:
    """Why ``layer`` cannot be refit here, or None (channel-wise layers are not asked: they need no refit)."""
    if len(layer._inbound_nodes) != 1:
        return "called more than once (shared weights)"
    if type(layer) is keras.layers.Dense:
        return None
    if type(layer) not in REFIT:
        return f"{type(layer).__name__}: only Dense, Conv1D and Conv2D layers are refit"
    if getattr(layer, "groups", 1) != 1 or layer.padding == "causal":
        return "a grouped or causal convolution"
    return None


def _rows(model: keras.Model, layer, arrays: list, rng, max_rows: int, batch: int = 32) -> np.ndarray:
    """What the layer's kernel reads, one row per output position (float64): the input vector of a
    Dense, the k x k x C patch of a convolution (in the kernel's own order).

    At most ``max_rows`` rows, drawn at random in proportion from each batch; ``rng`` seeded alike
    draws the same positions in the pruned and the original model (their inputs differ only in width)."""
    feed = keras.Model(model.inputs, layer.input)
    n, parts = len(arrays[0]), []
    for i in range(0, n, batch):
        rows = _patches(layer, np.asarray(feed([a[i:i + batch] for a in arrays], training=False), np.float32))
        take = -(-max_rows * min(batch, n - i) // n)
        if len(rows) > take:
            rows = rows[np.sort(rng.choice(len(rows), take, replace=False))]
        parts.append(rows.astype(np.float64))
    return np.concatenate(parts)


def _patches(layer, act: np.ndarray) -> np.ndarray:
    """Rows ``r`` with ``r @ kernel.reshape(-1, out) + bias`` == the layer's pre-activation output."""
    if type(layer) is keras.layers.Dense:
        return act.reshape(-1, act.shape[-1])
    import tensorflow as tf

    one_d = type(layer) is keras.layers.Conv1D
    images = act[:, None] if one_d else act
    size, stride, rate = ((1, *v) if one_d else tuple(v) for v in (layer.kernel_size, layer.strides,
                                                                   layer.dilation_rate))
    patches = tf.image.extract_patches(images, sizes=[1, *size, 1], strides=[1, *stride, 1], rates=[1, *rate, 1],
                                       padding=layer.padding.upper()).numpy()
    return patches.reshape(-1, patches.shape[-1])


def _refit(layer, original, x_p: np.ndarray, x_o: np.ndarray, kept: dict, ridge: float) -> dict:
    """Solve the ridge problem for ``layer``'s kernel (and bias) and assign it; the residuals."""
    out = np.asarray(kept["out"]) if "out" in kept else np.arange(original.kernel.shape[-1])
    w_o = np.asarray(original.kernel.numpy(), np.float64).reshape(-1, original.kernel.shape[-1])[:, out]
    b_o = np.asarray(original.bias.numpy(), np.float64)[out] if original.use_bias else 0.0
    target = x_o @ w_o + b_o
    shape = tuple(layer.kernel.shape)
    w0 = np.asarray(layer.kernel.numpy(), np.float64).reshape(-1, shape[-1])
    design = np.hstack([x_p, np.ones((len(x_p), 1))]) if layer.use_bias else x_p
    start = np.vstack([w0, layer.bias.numpy()[None, :]]) if layer.use_bias else w0
    gram = design.T @ design
    lam = ridge * float(np.mean(np.diag(gram))) + 1e-12
    solved = np.linalg.solve(gram + lam * np.eye(len(gram)), design.T @ target + lam * start)
    layer.kernel.assign(solved[: len(w0)].reshape(shape).astype(np.float32))
    if layer.use_bias:
        layer.bias.assign(solved[-1].astype(np.float32))
    spread = float(np.sum(np.square(target - target.mean(axis=0)))) or 1.0
    residual = lambda w: float(np.sum(np.square(design @ w - target))) / spread  # noqa: E731
    return {"relative_residual_before": residual(start), "relative_residual_after": residual(solved),
            "rows": int(len(x_p))}
