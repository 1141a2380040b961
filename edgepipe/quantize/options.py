"""The quantization techniques asked for: the target's defaults with the project's overrides."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TechniqueOptions:
    """``quantization.fc_weights``, ``equalize``, ``bias_correction`` as resolved for one build."""

    fc_weights: str = "auto"
    equalize: str = "auto"
    bias_correction: str = "auto"

    def to_dict(self) -> dict:
        return {"fc_weights": self.fc_weights, "equalize": self.equalize, "bias_correction": self.bias_correction}


def technique_options(profile, project) -> TechniqueOptions:
    q, o = profile.quantization, project.quantization
    pick = {k: getattr(o, k, None) or getattr(q, k) for k in ("fc_weights", "equalize", "bias_correction")}
    return TechniqueOptions(**pick)
