"""The ``prune:`` section of the project config.

Light on purpose (pydantic only, no Keras): the config loader imports it to
validate YAML long before TensorFlow is loaded. Messages name the key, the
value and the allowed range, because the user reads them in a terminal.
Layer names in ``per_layer``/``exclude`` can only be checked against a model,
so :func:`check_layer_names` does that when pruning starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgepipe.errors import ConfigError, UnknownNameError


def _check_ratio(key: str, value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{key}={value} is outside the allowed range [0, 1)")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FinetuneSettings(_Strict):
    """Recovery after pruning: distillation from the unpruned model, every output, with or without labels.

    ``alpha`` weighs an output's label loss and ``1 - alpha`` its distillation
    loss (KL at ``temperature`` for class scores, MSE for other outputs); an
    output without labels is distilled alone. Training stops after
    ``patience`` epochs without a lower eval error and the best weights are
    restored (see docs/pruning.md).
    """

    epochs: int = Field(default=10, ge=1, description="Most epochs of fine-tuning.")
    learning_rate: float = Field(default=1e-3, gt=0, description="Adam learning rate.")
    batch_size: int = Field(default=32, ge=1, description="Samples per training step.")
    temperature: float = Field(default=4.0, gt=0, description=(
        "Distillation temperature for class-score outputs (softens the teacher's distribution)."))
    alpha: float = Field(default=0.5, ge=0, le=1, description=(
        "Weight of the label loss for outputs that have labels; 1 - alpha goes to distillation."))
    patience: int = Field(default=3, ge=1, description=(
        "Epochs without a lower eval error (labels, else agreement or error against the unpruned model) "
        "before training stops and the best weights are restored."))
    seed: int = Field(default=0, description="Random seed for shuffling.")
    inference_mode: bool | None = Field(default=None, description=(
        "Train with BatchNormalization and Dropout as they run on the device: moving statistics frozen "
        "(gamma and beta still learn), no dropout. Distillation then matches the student to the teacher "
        "exactly where they are compared; in training mode the batch statistics and dropout noise undo a "
        "reconstructed start (MLPerf Tiny's DS-CNN at half its channels, label-free: 92.2 % agreement "
        "after 12 epochs in training mode, 95.6 % in inference mode). null: on when no output has labels "
        "(distillation alone), off with labels, where dropout regularises."))


METRICS = ("macs", "size", "latency", "ram")


class PruneTarget(_Strict):
    """What a sensitivity-aware prune must reach, as the fraction of the original model KEPT.

    ``{macs: 0.5}`` asks for at most 50 % of the original multiply-accumulates;
    ``size`` counts parameters (one byte each in int8); ``latency`` is the target
    profile's own latency estimate (its per-kernel cost model applied to the
    narrowed layers, as the device runs them), or MACs when pruning runs without
    a profile; the report's ``counted_as`` says which. ``ram`` counts activation
    bytes: the soft maximum over layers of what each needs live at once (its
    int8 inputs and outputs), which is what sets a microcontroller's arena
    and which MACs or parameters may not touch. Exactly one metric is given.
    """

    macs: float | None = Field(default=None, description=(
        "Keep at most this fraction of the original MACs, 0 < macs < 1 (0.5 = half the MACs)."))
    size: float | None = Field(default=None, description=(
        "Keep at most this fraction of the original parameters (int8 weight bytes), 0 < size < 1."))
    latency: float | None = Field(default=None, description=(
        "Keep at most this fraction of the original latency, 0 < latency < 1, as the target profile's "
        "per-kernel latency model estimates it for the narrowed layers (MACs without a profile; the report "
        "says which)."))
    ram: float | None = Field(default=None, description=(
        "Keep at most this fraction of the original activation memory, 0 < ram < 1: the largest bytes one "
        "layer needs live at once (its int8 inputs and outputs), counted as a soft maximum over layers so "
        "that layers tied at the peak all count. The build then measures the real arena."))

    @field_validator("macs", "size", "latency", "ram")
    @classmethod
    def _fraction(cls, value: float | None, info) -> float | None:
        if value is not None and not 0.0 < value < 1.0:
            raise ValueError(f"{info.field_name}={value} is outside the allowed range (0, 1) "
                             f"(the fraction of the original {info.field_name} to keep)")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> PruneTarget:
        given = [m for m in METRICS if getattr(self, m) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(METRICS)} (found {given or 'none'}), "
                             f"e.g. target: {{macs: 0.5}}")
        return self

    @property
    def metric(self) -> str:
        return next(m for m in METRICS if getattr(self, m) is not None)

    @property
    def fraction(self) -> float:
        """The fraction of the original metric to keep."""
        return float(getattr(self, self.metric))

    @classmethod
    def parse(cls, text: str) -> dict[str, str]:
        """``macs=0.5`` (the CLI's form) -> ``{"macs": "0.5"}``; the value is validated with the config."""
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"expected METRIC=FRACTION such as macs=0.5 (metrics: {', '.join(METRICS)}), "
                             f"found {text!r}")
        return {key.strip(): value.strip()}


class PruneSettings(_Strict):
    """How to prune. ``method: channel`` narrows layers (smaller, faster
    everywhere); ``method: mn`` zeroes ``n`` of every ``m`` consecutive input
    weights (same size and speed on dense int8 runtimes)."""

    method: Literal["channel", "mn"] = Field(default="channel", description=(
        "channel: remove whole channels and rebuild a narrower model (smaller and faster everywhere); "
        "mn: zero n of every m weights (same size and speed on dense int8 runtimes)."))
    ratio: float = Field(default=0.5, description=(
        "Fraction of each prunable channel group removed, 0 <= ratio < 1 (not with target)."))
    target: PruneTarget | None = Field(default=None, description=(
        "Instead of a uniform ratio: the fraction of the original macs, size or latency to keep, reached "
        "with per-group ratios chosen by measured sensitivity and cost (docs/pruning.md). Not with ratio."))
    per_layer: dict[str, float] = Field(default_factory=dict, description=(
        "Ratio per Keras layer name, overriding ratio for that layer's group."))
    exclude: list[str] | None = Field(default=None, description=(
        "Keras layers kept whole (default: the first layer and the output layers)."))
    prune_first: bool = Field(default=False, description=(
        "Prune the first convolution too, which the default exclusion keeps whole (it sees raw pixels; on "
        "microcontrollers its output is often the largest activation, the RAM peak). Not with exclude."))
    importance: Literal["l1", "l2", "bn"] = Field(default="l1", description=(
        "How channels are ranked: l1 or l2 norm of their weights, or the BatchNormalization scale (bn)."))
    n: int = Field(default=2, ge=1, description="weights kept in each block of m")
    m: int = Field(default=4, ge=2, description="block size along the input axis")
    reconstruct: bool | None = Field(default=None, description=(
        "Refit the layers that read pruned channels by least squares so their outputs match the unpruned "
        "model's (no training, inputs only); kept only if it brings the pruned model closer to the original "
        "on held-out inputs. null: on when there is no labelled training data."))
    finetune: FinetuneSettings | None = Field(default=None, description=(
        "Recover accuracy after pruning by distillation from the unpruned model (unset: no fine-tuning)."))

    @field_validator("ratio")
    @classmethod
    def _ratio_in_range(cls, value: float) -> float:
        return _check_ratio("ratio", value)

    @field_validator("per_layer")
    @classmethod
    def _per_layer_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for name, ratio in value.items():
            _check_ratio(f"per_layer.{name}", ratio)
        return value

    @model_validator(mode="after")
    def _target_alone(self) -> PruneSettings:
        """A target decides every group's ratio, so a ratio given beside it would be silently ignored."""
        if self.target is None:
            return self
        for key in ("ratio", "per_layer"):
            if key in self.model_fields_set:
                raise ValueError(f"prune.{key} and prune.target are mutually exclusive "
                                 f"(the target chooses every group's ratio): remove one of them")
        if self.method != "channel":
            raise ValueError("prune.target needs method: channel (n:m sparsity has no ratio to choose)")
        return self

    @model_validator(mode="after")
    def _first_or_exclude(self) -> PruneSettings:
        """An explicit exclude list replaces the default one that prune_first changes."""
        if self.prune_first and self.exclude is not None:
            raise ValueError("prune.prune_first and prune.exclude are mutually exclusive (prune_first drops "
                             "the first convolution from the default exclusion): list the layers in exclude")
        return self

    @model_validator(mode="after")
    def _n_below_m(self) -> PruneSettings:
        if self.n >= self.m:
            raise ValueError(
                f"n={self.n} must be smaller than m={self.m} "
                f"(n weights are kept in every block of m; 2:4 is n=2, m=4)"
            )
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "prune") -> PruneSettings:
        """Validate a plain mapping; errors become one :class:`ConfigError`."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in (where, *first["loc"]))
            problem = first["msg"].removeprefix("Value error, ")
            raise ConfigError(key, problem) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; with a target, without the ratio it replaces (so from_dict accepts it again)."""
        data = self.model_dump(mode="json")
        if self.target is not None:
            del data["ratio"], data["per_layer"]
            data["target"] = {self.target.metric: self.target.fraction}
        return data


def check_layer_names(settings: PruneSettings, known: Iterable[str]) -> None:
    """Every name in ``per_layer`` and ``exclude`` must be a layer of the model."""
    known = list(known)
    known_set = set(known)
    for name in [*settings.per_layer, *(settings.exclude or [])]:
        if name not in known_set:
            raise UnknownNameError("layer", name, known)
