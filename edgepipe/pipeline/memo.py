"""Replay whole stages from the cache: a stage's outcome, stored once.

The stages that need the float Keras model (prune, quantize, verify) are the
slow ones and the only ones that import TensorFlow. Each returns a
:class:`~edgepipe.pipeline.outcome.StageOutcome`; :meth:`StageMemo.run`
stores it in the :mod:`~edgepipe.pipeline.cache` under a key of everything the
stage can depend on (see :func:`stage_key`) and, next time, hands back the
stored outcome instead of running the stage.

Replay is all or nothing: when every such stage has an entry, all are
replayed and the Keras model is never loaded (so TensorFlow is never
imported); otherwise every one runs, with the model loaded first.
"""

from __future__ import annotations

from typing import Callable

from edgepipe.data.samples import arrays_of
from edgepipe.pipeline.cache import MISSING, StageCache, array_digest
from edgepipe.pipeline.outcome import StageOutcome

#: Profile fields the model stages never read (names, budgets, budget-only settings): changing
#: one re-runs the checks, not the stages; a profile that only differs in them shares entries.
#: (``tflm`` is read: the verify stage runs TFLM at the arena the firmware reserves.)
CHECK_ONLY_FIELDS = ("name", "extends", "description", "sources", "memory", "latency", "energy", "cost_model")
#: Project fields replaced by content hashes (model, data) or read only after the model stages.
PROJECT_NOT_KEYED = {"model", "data", "output", "target", "emit"}


def stage_key(ctx) -> dict:
    """Everything the model stages read: content hashes, config, profile minus budgets, settings."""
    inputs = ctx.inputs
    data = {role: array_digest(*arrays_of(split.x), *(split.labels[k] for k in sorted(split.labels)))
            for role in ("representative", "eval", "train", "val") if (split := getattr(inputs, role)) is not None}
    return {
        "model": inputs.model_sha256,
        "data": data,
        "project": ctx.project.model_dump(mode="json", exclude=PROJECT_NOT_KEYED),
        "profile": {k: v for k, v in ctx.profile.to_dict().items() if k not in CHECK_ONLY_FIELDS},
        "settings": ctx.settings.to_dict(),
    }


class StageMemo:
    """Runs or replays the stages of one build that need the float model."""

    def __init__(self, ctx, cache: StageCache, stages: tuple[str, ...]):
        self.ctx, self.cache, self.stages = ctx, cache, stages
        self.key = stage_key(ctx) if cache.enabled else None
        self.status: dict[str, str] = {}
        self.replay = self._lookup()
        if self.replay is not None:
            ctx.progress.note(f"inputs unchanged: {', '.join(stages)} replayed from the cache ({cache.settings.dir})")

    def _lookup(self) -> dict[str, StageOutcome] | None:
        if not self.cache.enabled:
            return None
        found = {}
        for stage in self.stages:
            value = self.cache.get(stage, self.key)
            if value is MISSING:
                return None
            found[stage] = StageOutcome.decode(value)
        return found

    def run(self, name: str, fn: Callable[[object], StageOutcome]) -> StageOutcome:
        """The outcome of stage ``name``: replayed from the cache, or run (loading the model first) and stored."""
        ctx = self.ctx
        if self.replay is not None:
            self.status[name] = "hit"
            return self.replay[name]
        if ctx.model is None:
            ctx.model = ctx.inputs.load_model()
        outcome = fn(ctx)
        if self.cache.enabled:
            self.cache.put(name, self.key, outcome.encode())
        self.status[name] = "miss" if self.cache.enabled else "off"
        return outcome

    def summary(self) -> dict:
        """For the report's ``cache`` section: each cached step's hit, miss or off."""
        return {"dir": str(self.cache.settings.dir), "stages": {**self.cache.stats, **self.status}}
