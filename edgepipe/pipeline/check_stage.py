"""The target's backend judges the converted model: rules, the runtime's own checks, memory, latency.

The same :meth:`~edgepipe.backends.base.Backend.judge` runs in ``edgepipe
verify`` and ``edgepipe inspect``, so the three commands give one verdict. It
runs before the verify stage because the device runner needs what it found
(the TFLM arena the firmware will reserve).
"""

from __future__ import annotations

from edgepipe.backends import Judgement, backend_for
from edgepipe.pipeline.context import BuildContext
from edgepipe.pipeline.outcome import StageOutcome


def run(ctx: BuildContext) -> tuple[StageOutcome, Judgement]:
    """The backend's judgement as a stage outcome (plus host latency where it means something)."""
    backend = backend_for(ctx.profile)
    with ctx.progress.task(f"checking on {backend.name}", 0):
        judgement = backend.judge(ctx.tflite, ctx.io_contract)
    out = StageOutcome(sections=dict(judgement.sections), checks=list(judgement.checks), files=dict(judgement.files))
    if judgement.firmware is None and wants_c_sources(ctx):
        firmware, note = judgement.firmware, judgement.firmware_note
        if "c" in ctx.project.emit and not backend.firmware_sources:
            firmware, note = backend.requested_firmware(ctx.tflite)
        judgement = Judgement(judgement.checks, judgement.sections, judgement.files, firmware, note)
        out.notes += [note] if note else []
    sample = _sample(ctx)
    host = backend.host_latency(ctx.tflite_bytes, sample) if sample is not None else None
    if host is not None:
        out.sections["latency"] = {**out.sections.get("latency", {}), "host": host}
    return out, judgement


def wants_c_sources(ctx: BuildContext) -> bool:
    """Firmware sources: always for MCU and NPU runtimes, on request (``emit: [c]``) elsewhere."""
    return "c" in ctx.project.emit or backend_for(ctx.profile).firmware_sources


def _sample(ctx: BuildContext):
    inputs = ctx.inputs
    data = None if inputs is None else (inputs.eval or inputs.representative)
    return None if data is None else data.x[:1]
