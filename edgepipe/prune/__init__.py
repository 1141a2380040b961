"""Structured pruning of Keras 3 models: channel pruning and m:n sparsity.

``PruneSettings`` is light (pydantic only) so the config loader can import
it without TensorFlow; the functions load Keras on first use.

    result = prune_model(model, settings, channel_multiple=8)
    recovery = finetune(result.model, model, (x, y), (x_val, y_val), settings)
"""

from __future__ import annotations

from edgepipe.prune.settings import FinetuneSettings, PruneSettings

__all__ = [
    "PruneSettings",
    "FinetuneSettings",
    "prune_model",
    "finetune",
    "apply_mn_sparsity",
    "PruneResult",
    "FinetuneResult",
    "MnResult",
]

_LAZY = {
    "prune_model": "edgepipe.prune.channel",
    "PruneResult": "edgepipe.prune.result",
    "finetune": "edgepipe.prune.recovery",
    "FinetuneResult": "edgepipe.prune.recovery",
    "apply_mn_sparsity": "edgepipe.prune.mn_sparsity",
    "MnResult": "edgepipe.prune.mn_sparsity",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgepipe.prune' has no attribute {name!r}")
