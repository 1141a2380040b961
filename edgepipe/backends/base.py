"""One object per runtime that owns every judgement about a ``.tflite`` on that runtime.

``edgepipe build`` (its check stage), ``edgepipe verify`` and ``edgepipe
inspect`` all ask the same :class:`Backend` — so the three commands cannot
disagree about a model. A backend knows:

- its **runtime plan**: the runner accuracy is measured with (the device's own
  kernels) and the runner it is cross-checked against;
- the **rule checks** on the flatbuffer (I/O types as the profile asks, int8-only,
  static shapes where the runtime needs them) and its runtime's own static checks;
- how **memory** is counted on that runtime (lifetime planner, measured TFLM arena,
  Vela's SRAM) and held to the budgets;
- the **latency estimate** the latency budget is held to, and the **energy** estimate
  (latency x the profile's active power) the energy budget is held to;
- the **firmware facts**: which model the firmware embeds and the arena it reserves.

:meth:`Backend.judge` returns all of it as one :class:`Judgement`; nothing is
written and nothing is printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgepipe.checks import Check, budget_check
from edgepipe.config.schema import TargetProfile
from edgepipe.runtimes.base import RuntimePlan
from edgepipe.tflite import rules
from edgepipe.tflite.memory import plan_memory
from edgepipe.tflite.model import TfliteModel


@dataclass(frozen=True)
class IOContract:
    """The integer (or float) types the profile and project ask for at the model's inputs and outputs.

    Decided once from the requested settings, before any accuracy-aware step may
    change the conversion: what the firmware was written against.
    """

    input_dtype: str
    output_dtype: str

    @classmethod
    def from_settings(cls, settings) -> "IOContract":
        return cls(settings.input_dtype.value, settings.output_dtype.value)


@dataclass(frozen=True)
class Firmware:
    """What firmware sources embed: the model bytes the device loads and the arena it reserves."""

    model: bytes
    arena_bytes: int
    arena_source: str


@dataclass(frozen=True)
class Judgement:
    """A backend's verdict on one model: checks in report order, report sections, files, firmware facts.

    ``firmware`` is None when no arena could be measured: firmware sources are
    then not written (a header with a guessed arena would be a promise nobody checked).
    """

    checks: tuple[Check, ...]
    sections: dict = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    firmware: Firmware | None = None
    firmware_note: str = ""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


class Backend:
    """The base: rules every runtime shares; subclasses add memory, latency and firmware."""

    name = "base"
    static_shapes = True      # the runtime cannot resize tensors (every MCU and NPU runtime)
    firmware_sources = True   # firmware sources are emitted for every build on this runtime

    def __init__(self, profile: TargetProfile):
        self.profile = profile

    @property
    def plan(self) -> RuntimePlan:
        raise NotImplementedError

    def judge(self, model: TfliteModel, contract: IOContract) -> Judgement:
        """Every check that needs no data: rules, the runtime's own checks, memory, latency."""
        raise NotImplementedError

    def runner_arena(self, model: TfliteModel) -> int | None:
        """The arena a TFLM runner uses for this model on this target (None: the runtime has no arena)."""
        return None

    def host_latency(self, model_bytes: bytes, sample) -> dict | None:
        """Wall time on this host, where it says something about the device (None: it does not)."""
        return None

    def requested_firmware(self, model: TfliteModel) -> tuple[Firmware | None, str]:
        """Firmware facts when the project asks for C sources (``emit: [c]``) on a runtime that has none."""
        return None, f"no firmware sources for the {self.name} runtime"

    def rule_checks(self, model: TfliteModel, contract: IOContract) -> list[Check]:
        """I/O types as the contract says, int8-only where the target demands it, static shapes."""
        checks = [rules.io_dtype_check(model, contract.input_dtype, contract.output_dtype)]
        if self.profile.accelerator.int8_only:
            checks.append(rules.int8_only_check(model))
        if self.static_shapes:
            checks.append(rules.static_shape_check(model))
        return checks

    def flash_check(self, size: int, what: str = "model (.tflite)") -> Check:
        return budget_check("flash", size, self.profile.memory.flash, "bytes", "measured:file", what)

    def memory_section(self, model: TfliteModel) -> dict:
        return {"model_bytes": model.size, **plan_memory(model).to_dict()}

    def latency_section(self, estimate) -> dict:
        return {"target": estimate.to_dict(), "budget_checked_against": estimate.source}

    def estimate_checks(self, estimate) -> tuple[list[Check], dict]:
        """The latency and energy checks of a device latency estimate, and their report sections.

        Energy is the estimate times the profile's active power (``device.power``); without one the
        energy check is skipped and says so.
        """
        from edgepipe.estimate import energy_check, estimate_energy, latency_check

        energy = estimate_energy(estimate, self.profile)
        checks = [latency_check(estimate, self.profile), energy_check(energy, self.profile, estimate.source)]
        sections = {"latency": self.latency_section(estimate)}
        if energy is not None:
            sections["energy"] = energy.to_dict()
        return checks, sections
