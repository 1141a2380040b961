"""Energy of one inference: the estimated latency times the device's active power.

The power figure is the profile's ``device.power`` (with where it comes from:
a datasheet, a published measurement, or an assumption). The estimate keeps the
latency's ``source`` label and band, widened by how trustworthy the power figure
is: a datasheet's run-mode figure leaves out the rest of the board, an
assumption may be further off. See docs/latency.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgepipe.checks import Check, budget_check
from edgepipe.config.schema import TargetProfile
from edgepipe.estimate.latency import LatencyEstimate

#: How much each kind of power figure widens the energy band (both ways).
POWER_WIDEN = {"measured": 1.0, "datasheet": 1.25, "assumption": 1.5}
UNIT = "µJ"


@dataclass(frozen=True)
class EnergyEstimate:
    """Joules per inference, the power it assumed, and the range the true energy is expected in."""

    joules: float
    source: str
    power_w: float
    power_basis: str
    power_source: str
    band: tuple[float, float]
    band_basis: str

    @property
    def low_j(self) -> float:
        return self.joules * self.band[0]

    @property
    def high_j(self) -> float:
        return self.joules * self.band[1]

    def to_dict(self) -> dict:
        return {"joules": self.joules, "low_j": self.low_j, "high_j": self.high_j, "band": list(self.band),
                "band_basis": self.band_basis, "source": self.source, "power_w": self.power_w,
                "power_basis": self.power_basis, "power_source": self.power_source}


def estimate_energy(latency: LatencyEstimate, profile: TargetProfile) -> EnergyEstimate | None:
    """latency x active power, or None when the profile gives no ``device.power``."""
    power = profile.device.power
    if power is None:
        return None
    widen = POWER_WIDEN[power.basis]
    basis = f"latency band ({latency.band_basis})"
    if widen != 1.0:
        basis += f", widened {widen}x for a power figure from a {power.basis}"
    return EnergyEstimate(latency.seconds * power.active, latency.source, power.active, power.basis, power.source,
                          (latency.band[0] / widen, latency.band[1] * widen), basis)


def energy_check(energy: EnergyEstimate | None, profile: TargetProfile, source: str | None = None) -> Check:
    """Estimated energy (µJ) vs the profile's ``energy`` budget; skipped without a power figure or a budget."""
    budget = profile.energy * 1e6 if profile.energy is not None else None
    if energy is None:
        return Check("energy", "skip", None, budget, UNIT,
                     "no energy estimate: the profile has no device.power (active power and its source)", source)
    check = budget_check("energy", energy.joules * 1e6, budget, UNIT, energy.source, "estimated energy")
    detail = (check.detail + f" (expected {energy.low_j * 1e6:.3g}–{energy.high_j * 1e6:.3g} {UNIT} at "
              f"{energy.power_w * 1e3:.3g} mW, {energy.power_basis})")
    return Check(check.name, check.status, check.measured, check.budget, check.unit, detail, check.source)
