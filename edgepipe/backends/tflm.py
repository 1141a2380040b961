"""TensorFlow Lite Micro on microcontrollers: TFLM kernels, the measured arena, kernel-table latency and energy."""

from __future__ import annotations

from edgepipe.backends.base import Backend, Firmware, IOContract, Judgement
from edgepipe.runtimes.base import REFERENCE, TFLM, RuntimePlan
from edgepipe.tflite.model import TfliteModel


class TflmBackend(Backend):
    """Accuracy on TFLM itself, cross-checked with LiteRT's reference kernels.

    RAM is the arena TFLM really needs (measured by running the model, see
    :func:`edgepipe.runtimes.tflm.measure_arena`) plus the profile's margin and
    one application copy of each I/O tensor. The firmware header reserves the
    measured arena plus margin, and the accuracy runner uses that same arena.
    """

    name = "tflm"

    @property
    def plan(self) -> RuntimePlan:
        return RuntimePlan(TFLM, REFERENCE)

    def judge(self, model: TfliteModel, contract: IOContract) -> Judgement:
        from edgepipe.estimate.latency import cpu_latency
        from edgepipe.runtimes.tflm import tflm_checks

        rep = tflm_checks(model.data, self.profile)
        estimated, estimate_sections = self.estimate_checks(cpu_latency(model, self.profile))
        checks = [*self.rule_checks(model, contract), *rep.checks, *estimated]
        sections = {"memory": self.memory_section(model), "tflm": rep.to_dict(), **estimate_sections}
        if rep.arena is None:
            return Judgement(tuple(checks), sections,
                             firmware_note="no firmware sources: TFLite Micro could not run the model, "
                                           "so no arena was measured (see the tflm checks)")
        firmware = Firmware(model.data, rep.arena_bytes_with_margin, f"{rep.arena.source}:{rep.arena.method}")
        return Judgement(tuple(checks), sections, firmware=firmware)

    def runner_arena(self, model: TfliteModel) -> int | None:
        """Measured arena + the profile's margin: what the firmware header reserves (None if TFLM cannot run it)."""
        from edgepipe.runtimes.tflm import TflmError, arena_with_margin, measure_arena

        try:
            return arena_with_margin(measure_arena(model.data).bytes, self.profile)
        except TflmError:
            return None
