"""One result type for every check a build or verify runs.

A check is held to a budget from the target profile or config; it passes,
fails, or is skipped (no budget set, or nothing to measure). Its ``detail``
is the sentence a user reads when it fails: what was measured, the budget,
and which op or layer is to blame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    measured: float | int | str | None = None
    budget: float | int | str | None = None
    unit: str = ""
    detail: str = ""
    source: str | None = None

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    def to_dict(self) -> dict:
        return asdict(self)


def verdict_of(checks: list[Check]) -> str:
    """``failed`` if a check failed; ``unverified`` if nothing failed but accuracy could not be measured
    (no data at all, or nothing to compare with); else ``passed``. A skipped accuracy check is never PASSED."""
    if any(not c.passed for c in checks):
        return "failed"
    if any(c.name == "accuracy" and c.status == "skip" for c in checks):
        return "unverified"
    return "passed"


def held_to_measurement(checks: list[Check], required: bool) -> list[Check]:
    """``checks`` with a skipped accuracy check turned into a failure when the profile requires a
    measurement (``accuracy.require_measured``): then an unmeasured model is FAILED, not UNVERIFIED."""
    if not required:
        return checks
    return [Check(c.name, "fail", c.measured, c.budget, c.unit,
                  f"{c.detail}; accuracy.require_measured is true, so an unmeasured model fails", c.source)
            if c.name == "accuracy" and c.status == "skip" else c for c in checks]


def budget_check(name: str, measured: float, budget: float | None, unit: str,
                 source: str | None = None, what: str = "") -> Check:
    """measured <= budget, or skipped when the profile sets no budget."""
    if budget is None:
        return Check(name, "skip", measured, None, unit, f"no {name} budget in the target profile", source)
    ok = measured <= budget
    pct = 100.0 * measured / budget if budget else float("inf")
    verdict = "within" if ok else "OVER"
    detail = f"{what or name} {_fmt(measured, unit)} is {verdict} the budget {_fmt(budget, unit)} ({pct:.0f}%)"
    return Check(name, "pass" if ok else "fail", measured, budget, unit, detail, source)


def _fmt(value: float, unit: str) -> str:
    from edgepipe.units import format_size, format_time

    if unit == "bytes":
        return format_size(value)
    if unit == "s":
        return format_time(value)
    return f"{value:g} {unit}".strip()
