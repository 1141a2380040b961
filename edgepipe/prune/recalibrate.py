"""Re-estimate BatchNormalization statistics of a pruned model from unlabeled data.

Removing channels changes what every later layer sees, so the moving mean and
variance learned on the full model no longer match: a pruned model evaluated
in inference mode can fall to near chance before any fine-tuning. Measuring
the statistics again on a few hundred inputs (the representative data is
enough; no labels, no gradient steps) restores most of the accuracy, and is
the only recovery possible when the user has no training data.

Each BatchNormalization is measured in topological order on the output of
the already-corrected layers before it, in inference mode, so Dropout does
not disturb the figures. Layers inside nested models, and shared layers
(called more than once), keep their statistics and are listed as skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np


@dataclass(frozen=True)
class Recalibration:
    layers: tuple[str, ...]
    skipped: tuple[str, ...]
    samples: int

    def to_dict(self) -> dict:
        return {"layers": list(self.layers), "skipped": list(self.skipped), "samples": self.samples,
                "method": "BatchNormalization moving mean/variance re-measured in inference mode"}


def recalibrate_batchnorm(model: keras.Model, x: np.ndarray, max_samples: int = 1024,
                          batch_size: int = 128) -> Recalibration:
    """Set every top-level BatchNormalization's moving statistics from ``x`` (in place)."""
    from edgepipe.data.samples import as_float32, order_for
    from edgepipe.keras_io.names import input_names

    x = as_float32(x[:max_samples])  # an array, or Samples for a model with several inputs
    arrays = order_for(x, input_names(model), f"model {model.name!r}")
    done, skipped = [], []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            skipped += [f"{layer.name}/{sub.name}" for sub in _nested_bns(layer)]
            continue
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        if len(layer._inbound_nodes) != 1:
            skipped.append(layer.name)
            continue
        feed = keras.Model(model.inputs, layer.input)
        # direct calls, not predict(): one predict per BN would retrace a tf.function each time
        acts = np.concatenate([np.asarray(feed([a[i:i + batch_size] for a in arrays], training=False), np.float64)
                               for i in range(0, len(x), batch_size)])
        axes = tuple(i for i in range(acts.ndim) if i != (layer.axis if layer.axis >= 0 else acts.ndim + layer.axis))
        layer.moving_mean.assign(acts.mean(axis=axes).astype(np.float32))
        layer.moving_variance.assign(acts.var(axis=axes).astype(np.float32))
        done.append(layer.name)
    return Recalibration(tuple(done), tuple(skipped), int(len(x)))


def _nested_bns(model: keras.Model) -> list:
    return [la for la in model._flatten_layers() if isinstance(la, keras.layers.BatchNormalization)]
