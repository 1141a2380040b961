"""The target profile schema: what a device is, what it runs, what it allows.

Sizes and times are human strings parsed strictly (see :mod:`edgepipe.units`).
Unknown keys are refused so a typo such as ``int8_onyl`` cannot silently turn
a check off. Cross-field rules live in :meth:`TargetProfile._cross_rules`.
The documentation of every field is in ``docs/target-profiles.md``.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from edgepipe.units import parse_frequency, parse_size, parse_time

Size = Annotated[int, BeforeValidator(parse_size)]
Seconds = Annotated[float, BeforeValidator(parse_time)]
Hertz = Annotated[float, BeforeValidator(parse_frequency)]


def _parse_rate(text: object) -> float:
    """'8GB/s' -> bytes per second."""
    if isinstance(text, str) and text.strip().endswith("/s"):
        return float(parse_size(text.strip()[:-2]))
    raise ValueError(f"expected a rate such as '4GB/s', found {text!r}")


BytesPerSecond = Annotated[float, BeforeValidator(_parse_rate)]


class Runtime(str, Enum):
    LITERT = "litert"
    TFLM = "tflm"
    ETHOS_U = "ethos-u"


class Scheme(str, Enum):
    INT8 = "int8"
    INT16X8 = "int16x8"
    FLOAT16 = "float16"
    DYNAMIC = "dynamic"


class IODtype(str, Enum):
    INT8 = "int8"
    UINT8 = "uint8"
    FLOAT32 = "float32"
    INT16 = "int16"


class _Strict(BaseModel):
    """Unknown keys and non-finite numbers (``.nan``, ``.inf``) are refused everywhere."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False, allow_inf_nan=False)


class Device(_Strict):
    """Facts about the board, for the report and the cost model."""

    cpu: str | None = None
    arch: str | None = None
    cores: int | None = Field(default=None, ge=1)
    clock: Hertz | None = None
    npu: str | None = None


class Memory(_Strict):
    """Budgets. ``flash``: bytes of the model file (the .tflite, or Vela's
    output for Ethos-U). ``ram``: bytes of working memory for one inference
    (LiteRT: peak activation estimate from tensor lifetimes; TFLM: measured
    arena + margin + I/O buffers; Ethos-U: Vela's SRAM use)."""

    flash: Size | None = None
    ram: Size | None = None


class Accelerator(_Strict):
    """What the kernels demand: int8 everywhere, all ops on the NPU, channel counts."""

    int8_only: bool = False
    npu_only: bool = False
    channel_multiple: int = Field(default=1, ge=1)


class Quantization(_Strict):
    """Converter defaults for this target (the project config may override)."""

    scheme: Scheme = Scheme.INT8
    input_dtype: IODtype = IODtype.INT8
    output_dtype: IODtype = IODtype.INT8
    per_channel: bool = True
    calibration_samples: int = Field(default=200, ge=1)
    min_calibration_samples: int = Field(default=20, ge=1)


class Accuracy(_Strict):
    """How much accuracy the user accepts losing to quantization and pruning.

    ``absolute``: ``max_drop`` is in percentage points of top-1 (1.0 = one point).
    ``relative``: ``max_drop`` is a percentage of the float model's accuracy.
    For regression ``max_drop`` is the accepted RMSE increase in percent of
    the float model's RMSE.
    ``max_rmse_increase``: regression only, an RMSE increase (in the model's
    output units) accepted whatever ``max_drop`` allows: a percentage of the
    float RMSE allows nothing when that RMSE is 0 (labels that are the float
    model's own outputs) and next to nothing near it, so without this a
    quantized model can only fail there.
    ``max_lsb_diff``: largest allowed output difference, in LSBs, between the
    device runtime and the host reference kernels, per kernel: differences
    compound end to end (through a softmax, 1 LSB becomes several), so when
    the outputs differ by more, each op is re-run alone to find the kernel
    (see docs/verification.md).
    ``max_runtime_disagreement``: per-kernel LSBs are not the whole story; the
    percent of samples whose predicted class differs between the device runtime
    and the reference end to end is held to this too.
    """

    max_drop: float = Field(default=1.0, ge=0)
    drop_mode: Literal["absolute", "relative"] = "absolute"
    max_rmse_increase: float = Field(
        default=0.0, ge=0, allow_inf_nan=False,
        description="Regression: RMSE increase (output units) accepted whatever max_drop allows; "
                    "the only allowance when the float RMSE is 0.")
    max_lsb_diff: int = Field(default=1, ge=0)
    max_runtime_disagreement: float = Field(
        default=1.0, ge=0, le=100, allow_inf_nan=False,
        description="Classification: percent of cross-checked eval samples whose top-1 class may differ "
                    "between the device runtime and the host reference.")
    min_agreement: float | None = Field(
        default=None, ge=0, le=100, allow_inf_nan=False,
        description="Without labels, classification outputs: least percent of held-out samples whose top-1 "
                    "class is the same for the quantized (or pruned) model and the float one. Default "
                    "100 - max_drop: the top-1 drop cannot exceed the share of samples whose class changed.")
    min_sqnr_db: float = Field(
        default=15.0, allow_inf_nan=False,
        description="Without labels, regression and raw outputs: least signal-to-quantization-noise ratio "
                    "(dB) of each output against the float model on held-out samples.")
    min_cosine: float | None = Field(
        default=None, ge=-1, le=1, allow_inf_nan=False,
        description="Without labels: least mean cosine similarity of each output against the float model "
                    "(not checked when unset).")


class Tflm(_Strict):
    """TensorFlow Lite Micro settings: arena margin over the measured need."""

    arena_margin: Size = 1024
    arena_margin_ratio: float = Field(default=0.1, ge=0)


class EthosU(_Strict):
    """Vela settings: see `vela --help` for the accepted names."""

    accelerator_config: str = "ethos-u55-128"
    system_config: str | None = None
    memory_mode: str | None = None
    config_file: str | None = None


class CostModel(_Strict):
    """Sustained figures for the CPU latency estimate (see docs/latency.md)."""

    int8_macs_per_second: float | None = Field(default=None, gt=0)
    float_macs_per_second: float | None = Field(default=None, gt=0)
    memory_bandwidth: BytesPerSecond | None = None
    per_op_overhead: Seconds | None = None


class TargetProfile(_Strict):
    """A resolved target profile (after ``extends`` has been applied)."""

    name: str
    description: str = ""
    extends: str | None = None
    sources: list[str] = Field(default_factory=list)
    device: Device = Device()
    runtime: Runtime = Runtime.LITERT
    threads: int = Field(default=1, ge=1)
    memory: Memory = Memory()
    latency: Seconds | None = None
    accelerator: Accelerator = Accelerator()
    quantization: Quantization = Quantization()
    accuracy: Accuracy = Accuracy()
    tflm: Tflm = Tflm()
    ethos_u: EthosU = EthosU()
    cost_model: CostModel = CostModel()

    @model_validator(mode="after")
    def _cross_rules(self) -> "TargetProfile":
        """Rules that involve more than one field."""
        q = self.quantization
        if self.accelerator.int8_only:
            if q.scheme is not Scheme.INT8:
                raise ValueError(
                    f"accelerator.int8_only is true but quantization.scheme is "
                    f"{q.scheme.value!r}; an int8-only target needs scheme 'int8'"
                )
            for key, dt in (("input_dtype", q.input_dtype), ("output_dtype", q.output_dtype)):
                if dt not in (IODtype.INT8, IODtype.UINT8):
                    raise ValueError(
                        f"accelerator.int8_only is true but quantization.{key} is "
                        f"{dt.value!r}; use 'int8' or 'uint8'"
                    )
        if self.runtime is Runtime.TFLM and q.scheme in (Scheme.DYNAMIC, Scheme.FLOAT16):
            raise ValueError(
                f"runtime 'tflm' cannot run {q.scheme.value!r} models (TFLite Micro "
                "rejects hybrid and float16-weight models); use scheme 'int8' or 'int16x8'"
            )
        if q.min_calibration_samples > q.calibration_samples:
            raise ValueError(
                "quantization.min_calibration_samples must not exceed calibration_samples"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (sizes in bytes, times in seconds)."""
        return self.model_dump(mode="json")
