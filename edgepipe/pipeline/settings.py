"""Resolve converter settings from the target profile and project overrides."""

from __future__ import annotations

from edgepipe.config.project import ProjectConfig
from edgepipe.config.schema import IODtype, Scheme, TargetProfile
from edgepipe.errors import ConfigError
from edgepipe.keras_io.convert import ConvertSettings


def convert_settings(target: TargetProfile, project: ProjectConfig) -> ConvertSettings:
    """Project overrides win over the target's defaults; int8-only rules still hold."""
    q, o = target.quantization, project.quantization
    s = ConvertSettings(
        scheme=o.scheme or q.scheme,
        input_dtype=o.input_dtype or q.input_dtype,
        output_dtype=o.output_dtype or q.output_dtype,
        per_channel=q.per_channel if o.per_channel is None else o.per_channel,
        allow_float_fallback=not target.accelerator.int8_only,
    )
    if target.accelerator.int8_only:
        if s.scheme is not Scheme.INT8:
            raise ConfigError(f"{project.source} (quantization.scheme)",
                              f"target {target.name!r} is int8-only; scheme {s.scheme.value!r} is not allowed")
        for key, dt in (("input_dtype", s.input_dtype), ("output_dtype", s.output_dtype)):
            if dt not in (IODtype.INT8, IODtype.UINT8):
                raise ConfigError(f"{project.source} (quantization.{key})",
                                  f"target {target.name!r} is int8-only; {dt.value!r} I/O is not allowed")
    if s.scheme in (Scheme.FLOAT16, Scheme.DYNAMIC):
        s = ConvertSettings(s.scheme, IODtype.FLOAT32, IODtype.FLOAT32, s.per_channel, True)
    elif s.scheme is Scheme.INT16X8:
        fix = {IODtype.INT8: IODtype.INT16, IODtype.UINT8: IODtype.INT16}
        s = ConvertSettings(s.scheme, fix.get(s.input_dtype, s.input_dtype),
                            fix.get(s.output_dtype, s.output_dtype), s.per_channel, s.allow_float_fallback)
    return s
