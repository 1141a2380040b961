"""Rules on the converted flatbuffer that the converter does not enforce."""

from __future__ import annotations

from edgepipe.pipeline.context import BuildContext
from edgepipe.tflite import rules


def run(ctx: BuildContext) -> None:
    tfl, s, profile = ctx.tflite, ctx.settings, ctx.profile
    checks = [rules.io_dtype_check(tfl, s.input_dtype.value, s.output_dtype.value)]
    if profile.accelerator.int8_only:
        checks.append(rules.int8_only_check(tfl, s.input_dtype.value, s.output_dtype.value))
    if profile.runtime.value != "litert":
        checks.append(rules.static_shape_check(tfl))
    ctx.report.checks += checks
