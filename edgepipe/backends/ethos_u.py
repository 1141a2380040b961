"""Arm Ethos-U through Vela: the NPU's SRAM and cycle figures, the CPU-equivalent kernels for accuracy."""

from __future__ import annotations

import tempfile

from edgepipe.backends.base import Backend, Firmware, IOContract, Judgement
from edgepipe.checks import Check
from edgepipe.runtimes.base import REFERENCE, TFLM, RuntimePlan
from edgepipe.tflite.model import TfliteModel

VELA_MODEL, VELA_LAYERS = "model_vela.tflite", "model_vela_per-layer.csv"


class EthosUBackend(Backend):
    """Vela compiles the model; its SRAM, flash, NPU/CPU split and cycle estimate are the figures.

    The NPU cannot be simulated on the host, so accuracy is measured on LiteRT's
    reference kernels (the CPU-equivalent integer arithmetic) and cross-checked
    with TFLM. The firmware embeds Vela's model; its arena is Vela's SRAM figure.
    """

    name = "ethos-u"

    @property
    def plan(self) -> RuntimePlan:
        return RuntimePlan(REFERENCE, TFLM)

    def judge(self, model: TfliteModel, contract: IOContract) -> Judgement:
        from edgepipe.runtimes.vela import VelaError

        checks = self.rule_checks(model, contract)
        sections = {"memory": self.memory_section(model)}
        try:
            return self._compiled(model, checks, sections)
        except VelaError as exc:
            failed = Check("vela_compile", "fail", None, None, "", str(exc), "measured:vela")
            return Judgement((*checks, failed, self.flash_check(model.size)), sections,
                             firmware_note="no firmware sources: Vela could not compile the model")

    def _compiled(self, model: TfliteModel, checks: list[Check], sections: dict) -> Judgement:
        from edgepipe.estimate.latency import vela_latency
        from edgepipe.runtimes.vela import compile_vela, vela_checks
        from edgepipe.tflite.model import read_tflite

        with tempfile.TemporaryDirectory(prefix="edgepipe-vela-") as d:
            vela = compile_vela(model.data, self.profile, d, name="model")
            estimate = vela_latency(vela, read_tflite(vela.output_path), self.profile)
            files = {VELA_MODEL: vela.output_path.read_bytes()}
            if vela.per_layer_csv is not None:
                files[VELA_LAYERS] = vela.per_layer_csv.read_bytes()
        judged = [self._ram_with_cpu_ops(model, vela) if c.name == "ram" and vela.cpu_fallbacks else c
                  for c in vela_checks(vela, self.profile)]
        estimated, estimate_sections = self.estimate_checks(estimate)
        checks = [*checks, *judged, *estimated]
        sections["vela"] = {k: v for k, v in vela.to_dict().items()
                            if k not in ("output_path", "summary_csv", "per_layer_csv", "log_path")}
        sections.update(estimate_sections)
        firmware = Firmware(files[VELA_MODEL], vela.sram_bytes, "estimate:vela:sram_memory_used")
        return Judgement(tuple(checks), sections, files, firmware)

    def _ram_with_cpu_ops(self, model: TfliteModel, vela) -> Check:
        """Vela's SRAM leaves out what the Cortex-M's TFLM arena needs for ops the NPU cannot run.

        With CPU fallbacks the RAM figure is the larger of Vela's SRAM and the TFLM arena of the
        whole model on the CPU (exact when every op falls back, an upper bound otherwise) —
        never Vela's figure alone, which is 0 B for a model that runs entirely on the CPU.
        """
        from edgepipe.checks import budget_check
        from edgepipe.runtimes.tflm import TflmError, arena_with_margin, measure_arena

        n = len(vela.cpu_fallbacks)
        try:
            arena = arena_with_margin(measure_arena(model.data).bytes, self.profile)
        except TflmError as exc:
            return Check("ram", "fail", None, self.profile.memory.ram, "bytes",
                         f"not measured: {n} op(s) run on the CPU and TFLite Micro cannot run the model: {exc}",
                         "measured:host")
        return budget_check("ram", max(vela.sram_bytes, arena), self.profile.memory.ram, "bytes",
                            "measured:host:tflm+estimate:vela",
                            f"{n} op(s) run on the CPU: the larger of Vela SRAM ({vela.sram_bytes} B) and the TFLM "
                            f"arena of the whole model with margin ({arena} B, an upper bound),")
