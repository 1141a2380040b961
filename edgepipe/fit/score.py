"""What one candidate build scored: budget use and accuracy damage, read from its report.json.

A trial is an ordinary build, so its figures are the build's own, measured
the way ``edgepipe build`` measures them (the TFLM arena by bisection,
Vela's SRAM, the backend's latency and energy estimates, accuracy on the
device's kernels). This module only reads them and puts them on one scale:

- **budget use**: measured / budget for every budget the profile sets
  (``ram``, ``flash``, ``latency``, ``energy``); 1.0 is exactly at the budget;
- **damage**: the share of the profile's accuracy tolerance the model uses,
  taken from the accuracy checks (against labels, against the float model,
  and after pruning against the *unpruned* float model), the worst of them.
  1.0 is exactly at the tolerance, whatever its unit: a top-1 drop over
  ``max_drop``, changed classes over ``100 - min_agreement``, or the noise
  power over the noise that ``min_sqnr_db`` allows.

One scale for every output kind is what lets the search compare a
classifier's agreement with a detector's SQNR, and lets the report say
"uses 40 % of the accuracy tolerance".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

BUDGETS = ("ram", "flash", "latency", "energy")
ACCURACY_CHECKS = ("accuracy", "accuracy_vs_original")
#: A damage for a figure that cannot be put on the scale (a zero tolerance that is exceeded): far past 1.
UNBOUNDED = 1e6


@dataclass(frozen=True)
class BudgetUse:
    """One budget: the measured figure, the budget, their ratio and the unit."""

    name: str
    measured: float
    budget: float
    unit: str

    @property
    def ratio(self) -> float:
        return self.measured / self.budget if self.budget > 0 else (0.0 if self.measured <= 0 else UNBOUNDED)

    @property
    def over(self) -> bool:
        return self.measured > self.budget

    def to_dict(self) -> dict:
        return {"name": self.name, "measured": self.measured, "budget": self.budget, "unit": self.unit,
                "use": round(self.ratio, 4)}


@dataclass(frozen=True)
class Score:
    """A build's figures on the search's scales; ``damage`` is None when accuracy was not measured."""

    exit_code: int
    status: str
    budgets: tuple[BudgetUse, ...]
    damage: float | None
    accuracy: dict = field(default_factory=dict)
    failed: tuple[str, ...] = ()

    @property
    def feasible(self) -> bool:
        """Every check passed (budgets, accuracy and the target's rules): the build would exit 0."""
        return self.exit_code == 0

    def use(self, name: str) -> float | None:
        return next((b.ratio for b in self.budgets if b.name == name), None)

    def misses(self) -> list[dict]:
        """What keeps this build from fitting: each budget over, by how much, and other failed checks."""
        out = [{"check": b.name, "measured": b.measured, "budget": b.budget, "unit": b.unit,
                "over_by_percent": round(100.0 * (b.ratio - 1.0), 2)} for b in self.budgets if b.over]
        if self.damage is not None and self.damage > 1.0:
            out.append({"check": "accuracy", "tolerance_used_percent": round(100.0 * self.damage, 1)})
        named = {m["check"] for m in out}
        out += [{"check": name} for name in self.failed if name not in named and name not in ACCURACY_CHECKS]
        return out

    def excess(self) -> float:
        """How far from fitting, summed over what misses (0 when feasible): the nearest miss has the least."""
        over = sum(max(0.0, b.ratio - 1.0) for b in self.budgets)
        over += max(0.0, (self.damage or 0.0) - 1.0)
        others = [n for n in self.failed if n not in BUDGETS and n not in ACCURACY_CHECKS]
        return over + len(others)

    def to_dict(self) -> dict:
        return {"exit_code": self.exit_code, "status": self.status, "feasible": self.feasible,
                "budgets": [b.to_dict() for b in self.budgets],
                "damage": None if self.damage is None else round(self.damage, 4),
                "accuracy": self.accuracy, "failed_checks": list(self.failed)}

    @classmethod
    def from_dict(cls, doc: dict) -> "Score":
        return cls(doc["exit_code"], doc["status"],
                   tuple(BudgetUse(b["name"], b["measured"], b["budget"], b["unit"]) for b in doc["budgets"]),
                   doc["damage"], doc.get("accuracy", {}), tuple(doc.get("failed_checks", ())))


def score_report(report: dict) -> Score:
    """The :class:`Score` of a build report (``report.json`` as a dict)."""
    checks = report.get("checks", [])
    budgets = tuple(BudgetUse(c["name"], float(c["measured"]), float(c["budget"]), c.get("unit", ""))
                    for c in checks if c["name"] in BUDGETS and c["status"] in ("pass", "fail")
                    and c.get("budget") is not None and c.get("measured") is not None)
    graded = [c for c in checks if c["name"] in ACCURACY_CHECKS and c["status"] in ("pass", "fail")]
    damages = [_damage(c) for c in graded]
    return Score(int(report.get("exit_code", 3)), str(report.get("status", "")), budgets,
                 max(damages) if damages else None, _accuracy_figures(report, graded),
                 tuple(c["name"] for c in checks if c["status"] == "fail"))


def _damage(check: dict) -> float:
    """The share of the check's tolerance used (1.0 = at the limit) by the check's unit."""
    measured, limit, unit = check.get("measured"), check.get("budget"), check.get("unit", "")
    if measured is None or limit is None:
        return UNBOUNDED if check["status"] == "fail" else 0.0
    if unit.startswith("dB"):
        return float(10.0 ** ((float(limit) - float(measured)) / 10.0))
    measured, limit = max(0.0, float(measured)), float(limit)
    if limit <= 0:
        return 0.0 if measured <= 0 else UNBOUNDED
    return measured / limit


def _accuracy_figures(report: dict, graded: list[dict]) -> dict:
    """The figures a person reads beside the damage: each graded check, and top-1 where labels exist."""
    acc = report.get("accuracy") or {}
    out = {c["name"]: {"measured": c["measured"], "limit": c["budget"], "unit": c.get("unit", "")} for c in graded}
    quant = (acc.get("quantized") or {}).get("top1")
    if quant is not None:
        out["int8_top1"] = quant
    original = ((report.get("prune") or {}).get("accuracy") or {}).get("float_original")
    float_top1 = original if original is not None else (acc.get("float") or {}).get("top1")
    if float_top1 is not None:
        out["float_top1"] = float_top1
    return {k: v for k, v in out.items() if not (isinstance(v, float) and math.isnan(v))}
