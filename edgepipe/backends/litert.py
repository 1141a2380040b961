"""LiteRT on Linux and Android boards: XNNPACK kernels, lifetime-planner memory, kernel-table latency and energy."""

from __future__ import annotations

from edgepipe.backends.base import Backend, IOContract, Judgement
from edgepipe.checks import budget_check
from edgepipe.runtimes.base import REFERENCE, XNNPACK, RuntimePlan
from edgepipe.tflite.memory import plan_memory
from edgepipe.tflite.model import TfliteModel


class LiteRTBackend(Backend):
    """Accuracy on XNNPACK (what the board runs), cross-checked with the reference kernels.

    RAM is the lifetime planner's peak (activations plus persistent state): LiteRT's
    own arena planner places tensors the same greedy way. LiteRT resizes tensors, so
    dynamic shapes are allowed; no firmware sources unless the project asks for them.
    """

    name = "litert"
    static_shapes = False
    firmware_sources = False

    @property
    def plan(self) -> RuntimePlan:
        return RuntimePlan(XNNPACK, REFERENCE)

    def judge(self, model: TfliteModel, contract: IOContract) -> Judgement:
        from edgepipe.estimate.latency import cpu_latency

        plan = plan_memory(model)
        estimated, estimate_sections = self.estimate_checks(cpu_latency(model, self.profile))
        checks = [*self.rule_checks(model, contract), self.flash_check(model.size, "model file"),
                  budget_check("ram", plan.peak_bytes, self.profile.memory.ram, "bytes", "estimate:lifetime-planner",
                               "peak activation memory" + (f" + {plan.persistent_bytes} B of state" if
                                                            plan.persistent_bytes else "")),
                  *estimated]
        sections = {"memory": self.memory_section(model), **estimate_sections}
        return Judgement(tuple(checks), sections, firmware_note="LiteRT targets load the .tflite file itself")

    def host_latency(self, model_bytes: bytes, sample) -> dict | None:
        """XNNPACK on this host with the device's thread count, in a worker (a crash is recorded, not fatal)."""
        from edgepipe.runtimes.base import make_runner
        from edgepipe.runtimes.isolated import RuntimeFailure

        try:
            runner = make_runner(XNNPACK, model_bytes, self.profile.threads)
            try:
                return runner.latency(sample)
            finally:
                runner.close()
        except RuntimeFailure as exc:
            return {"error": str(exc), "source": "measured:host"}

    def requested_firmware(self, model: TfliteModel):
        """C sources are TFLite Micro sources: their arena is measured with TFLM, as on an MCU target."""
        from edgepipe.backends.base import Firmware
        from edgepipe.runtimes.tflm import TflmError, arena_with_margin, measure_arena

        try:
            arena = measure_arena(model.data)
        except TflmError as exc:
            return None, f"no firmware sources: TFLite Micro cannot run the model, so no arena was measured ({exc})"
        return Firmware(model.data, arena_with_margin(arena.bytes, self.profile), f"{arena.source}:{arena.method}"), ""
