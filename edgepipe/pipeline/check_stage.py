"""The target's backend judges the converted model: rules, the runtime's own checks, memory, latency.

The same :meth:`~edgepipe.backends.base.Backend.judge` runs in ``edgepipe
verify`` and ``edgepipe inspect``, so the three commands give one verdict. It
runs before the verify stage because the device runner needs what it found
(the TFLM arena the firmware will reserve).
"""

from __future__ import annotations

from edgepipe.backends import backend_for
from edgepipe.pipeline.context import BuildContext


def run(ctx: BuildContext) -> None:
    backend = backend_for(ctx.profile)
    with ctx.progress.task(f"checking on {backend.name}", 0):
        judgement = backend.judge(ctx.tflite, ctx.io_contract)
    ctx.judgement = judgement
    ctx.report.checks += list(judgement.checks)
    ctx.report.sections.update(judgement.sections)
    ctx.pending.update(judgement.files)
    ctx.firmware = judgement.firmware
    if ctx.firmware is None and wants_c_sources(ctx):
        note = judgement.firmware_note
        if "c" in ctx.project.emit and not backend.firmware_sources:
            ctx.firmware, note = backend.requested_firmware(ctx.tflite)
        if note:
            ctx.report.notes.append(note)
    sample = _sample(ctx)
    if sample is not None:
        host = backend.host_latency(ctx.tflite_bytes, sample)
        if host is not None:
            ctx.report.sections.setdefault("latency", {})["host"] = host


def wants_c_sources(ctx: BuildContext) -> bool:
    """Firmware sources: always for MCU and NPU runtimes, on request (``emit: [c]``) elsewhere."""
    return "c" in ctx.project.emit or backend_for(ctx.profile).firmware_sources


def _sample(ctx: BuildContext):
    inputs = ctx.inputs
    data = None if inputs is None else (inputs.eval or inputs.representative)
    return None if data is None else data.x[:1]
