"""The compression choices ``edgepipe fit`` searches, and how one choice becomes a build.

A candidate is a small set of knobs rather than one ratio per channel group:

- ``keep``: the fraction of the original cost to keep (1.0: no pruning). The
  per-group ratios that reach it are chosen by measured sensitivity
  (``prune.target``, :mod:`edgepipe.prune.allocate`), so the search does
  not have to learn dozens of ratios from a few dozen builds (NetAdapt and
  AMC search per layer with thousands of evaluations; a firmware team has
  minutes);
- ``metric``: what ``keep`` counts: MACs, parameters (flash), latency or
  activation memory (``ram``: the layers' largest working sets), because
  which one buys the budget that binds depends on the model (on MLPerf
  Tiny's ResNet-8 the RAM peak is the stem's 32x32 activations, tied to the
  first residual stack, which MAC and latency allocations leave alone);
- ``reconstruct``: least-squares refit of the layers that read pruned
  channels (inputs only, no training);
- ``first``: prune the first convolution too (``prune.prune_first``); it is
  kept whole by default, but on a microcontroller its output is often the
  RAM peak, which no other layer's pruning lowers (MLPerf Tiny's DS-CNN:
  its 64 channels at 25x5, twice, are the whole 16 KB of activations);
- ``per_channel``: per-channel or per-tensor weight scales (per-tensor is
  smaller and lighter on MCU kernels when accuracy allows);
- ``finetune_epochs``: distillation from the unpruned model, given only to
  the best few candidates (it is the one expensive knob).

Each candidate is an ordinary build with these settings as config
overrides (:meth:`Knobs.overrides`), so what fit measures is what build
ships.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgepipe.config.project import ProjectConfig, Removed

METRICS = ("macs", "latency", "size", "ram")
#: The metric that lowers each budget most directly (the edge candidates try it first when that budget binds).
METRIC_FOR_BUDGET = {"ram": "ram", "latency": "latency", "energy": "latency", "flash": "size"}
#: keep is searched on this grid: coarser steps change nothing that rounding to channel multiples keeps.
KEEP_STEP = 0.05
KEEP_MIN = 0.2


@dataclass(frozen=True)
class Knobs:
    """One candidate's choices (see the module docstring)."""

    keep: float = 1.0
    metric: str = "macs"
    reconstruct: bool = False
    per_channel: bool = True
    finetune_epochs: int = 0
    first: bool = False

    @property
    def prunes(self) -> bool:
        return self.keep < 1.0 - 1e-9

    def overrides(self, project: ProjectConfig) -> dict:
        """Dotted config overrides that make a build of this candidate (the project's own pruning is replaced)."""
        out: dict = {"quantization.per_channel": self.per_channel}
        if not self.prunes:
            out["prune"] = Removed()
            return out
        base = project.prune
        prune: dict = {"method": "channel", "target": {self.metric: round(self.keep, 4)},
                       "reconstruct": self.reconstruct}
        if base is not None:
            prune.update(importance=base.importance, **({"exclude": list(base.exclude)} if base.exclude else {}))
        if self.first:
            prune["prune_first"] = True
        if self.finetune_epochs:
            tune = base.finetune.model_dump() if base is not None and base.finetune is not None else {}
            prune["finetune"] = {**tune, "epochs": self.finetune_epochs}
        out["prune"] = prune
        return out

    def label(self) -> str:
        """A short human description: 'keep 55% of macs, reconstruct, per-tensor, fine-tune 5'."""
        parts = [f"keep {self.keep:.0%} of {self.metric}" if self.prunes else "unpruned"]
        if self.prunes and self.first:
            parts.append("first conv too")
        if self.prunes and self.reconstruct:
            parts.append("reconstruct")
        parts.append("per-channel" if self.per_channel else "per-tensor")
        if self.finetune_epochs:
            parts.append(f"fine-tune {self.finetune_epochs}")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> "Knobs":
        return cls(**doc)


def suggest(trial, fixed_per_channel: bool | None, first_allowed: bool = True) -> Knobs:
    """Knobs for an Optuna trial; every parameter is always sampled, so the space is the same for each trial."""
    keep = trial.suggest_float("keep", KEEP_MIN, 1.0, step=KEEP_STEP)
    metric = trial.suggest_categorical("metric", list(METRICS))
    reconstruct = trial.suggest_categorical("reconstruct", [True, False])
    choices = [fixed_per_channel] if fixed_per_channel is not None else [True, False]
    per_channel = trial.suggest_categorical("per_channel", choices)
    first = trial.suggest_categorical("first", [False, True] if first_allowed else [False])
    if keep >= 1.0 - 1e-9:  # nothing is pruned: the pruning knobs mean nothing, one candidate per weight scale
        return Knobs(1.0, "macs", False, per_channel)
    return Knobs(round(keep, 4), metric, reconstruct, per_channel, first=first)


def params_of(knobs: Knobs) -> dict:
    """The Optuna parameters of a candidate (to enqueue it or replay it)."""
    return {"keep": knobs.keep, "metric": knobs.metric, "reconstruct": knobs.reconstruct,
            "per_channel": knobs.per_channel, "first": knobs.first}


def first_allowed(project: ProjectConfig) -> bool:
    """``first`` is searched unless the project lists its own exclusions (they replace the default)."""
    return project.prune is None or project.prune.exclude is None


def baseline(project: ProjectConfig, profile) -> Knobs:
    """The model as it is, quantized the way the target (or the project) asks: always the first trial."""
    per_channel = project.quantization.per_channel
    return Knobs(1.0, "macs", False, profile.quantization.per_channel if per_channel is None else per_channel)
