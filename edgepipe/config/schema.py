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

from edgepipe.units import parse_energy, parse_frequency, parse_power, parse_size, parse_time

Size = Annotated[int, BeforeValidator(parse_size)]
Seconds = Annotated[float, BeforeValidator(parse_time)]
Hertz = Annotated[float, BeforeValidator(parse_frequency)]
Joules = Annotated[float, BeforeValidator(parse_energy)]
Watts = Annotated[float, BeforeValidator(parse_power)]


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


class Power(_Strict):
    """The device's power while it runs inference: energy per inference = estimated latency x ``active``."""

    active: Watts = Field(description=(
        "Power drawn while the model runs (whole MCU or SoC at the profile's clock), e.g. '40mW'."))
    basis: Literal["datasheet", "measured", "assumption"] = Field(description=(
        "Where the figure comes from: a datasheet's run-mode figure, a published measurement, or an "
        "assumption (widens the energy band, docs/latency.md)."))
    source: str = Field(description="The document and table, or the measurement, the figure is taken from.")


class Device(_Strict):
    """Facts about the board, for the report and the cost model."""

    cpu: str | None = Field(default=None, description="CPU core(s), e.g. 'Cortex-M4F' (shown in the report).")
    arch: str | None = Field(default=None, description="Instruction set, e.g. 'armv7e-m' (shown in the report).")
    cores: int | None = Field(default=None, ge=1, description="CPU cores on the board.")
    clock: Hertz | None = Field(default=None, description=(
        "CPU clock the model runs at, e.g. '120MHz': the kernel cost model counts cycles and divides by it."))
    npu: str | None = Field(default=None, description="NPU, if any, e.g. 'Ethos-U55-128'.")
    power: Power | None = Field(default=None, description=(
        "Active power for the energy estimate (no energy estimate without it)."))


class Memory(_Strict):
    """Budgets. ``flash``: bytes of the model file (the .tflite, or Vela's
    output for Ethos-U). ``ram``: bytes of working memory for one inference
    (LiteRT: peak activation estimate from tensor lifetimes; TFLM: measured
    arena + margin + I/O buffers; Ethos-U: Vela's SRAM use)."""

    flash: Size | None = Field(default=None, description=(
        "Budget for the model file: the .tflite, or Vela's output for Ethos-U, e.g. '512KiB'."))
    ram: Size | None = Field(default=None, description=(
        "Budget for one inference's working memory (LiteRT: peak activations; TFLM: measured arena + margin "
        "+ I/O buffers; Ethos-U: Vela's SRAM), e.g. '128KiB'."))


class Accelerator(_Strict):
    """What the kernels demand: int8 everywhere, all ops on the NPU, channel counts."""

    int8_only: bool = Field(default=False, description=(
        "Every op and activation must be integer: a float island (DEQUANTIZE -> float op -> QUANTIZE) "
        "fails the build."))
    npu_only: bool = Field(default=False, description=(
        "Every op must run on the NPU (Ethos-U): an op Vela leaves for the CPU fails the build."))
    channel_multiple: int = Field(default=1, ge=1, description=(
        "Channel counts the kernels like (XNNPACK 8, CMSIS-NN 4, Ethos-U 16); pruning rounds kept "
        "channels to a multiple of it."))


class Quantization(_Strict):
    """Converter defaults for this target (the project config may override)."""

    scheme: Scheme = Field(default=Scheme.INT8, description=(
        "Converter scheme: int8 (full integer), int16x8 (int16 activations, int8 weights), float16 "
        "(float16 weights) or dynamic (int8 weights, float activations)."))
    input_dtype: IODtype = Field(default=IODtype.INT8, description="Type of the model's input tensors.")
    output_dtype: IODtype = Field(default=IODtype.INT8, description="Type of the model's output tensors.")
    per_channel: bool = Field(default=True, description=(
        "Per-channel weight scales (per-tensor when false: smaller TFLM arena and file for "
        "FULLY_CONNECTED-heavy models, see docs/mcu.md)."))
    calibration_samples: int = Field(default=200, ge=1, description=(
        "Representative samples used for calibration, evenly spaced over the given data."))
    min_calibration_samples: int = Field(default=20, ge=1, description=(
        "Fewer representative samples than this is an error (one sample calibrates silently and badly)."))
    fc_weights: Literal["auto", "per-channel", "per-tensor"] = Field(default="auto", description=(
        "FULLY_CONNECTED weight scales. auto: per-tensor on tflm and ethos-u runtimes (per-channel costs "
        "TFLM arena and flash there), kept only if accuracy still meets the budget, else per-channel; "
        "per-channel elsewhere. Needs int8 I/O (docs/quantization.md)."))
    equalize: Literal["auto", "on", "off"] = Field(default="auto", description=(
        "Cross-layer equalization of Conv/Depthwise -> Conv pairs (BN folded first) before conversion. "
        "auto: tried when the int8 model misses the accuracy budget, kept only if it brings the int8 model "
        "closer to the float one; on: always; off: never."))
    bias_correction: Literal["auto", "on", "off"] = Field(default="auto", description=(
        "Empirical bias correction from representative data (each layer's bias shifted by the mean error "
        "its int8 weights cause). auto: tried when the int8 model misses the accuracy budget, kept only if it "
        "helps; on: always; off: never."))


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

    max_drop: float = Field(default=1.0, ge=0, description=(
        "Accepted top-1 drop (classification: points, or % of the float top-1 when drop_mode is relative) "
        "or RMSE increase in % of the float RMSE (regression), from quantization and pruning."))
    drop_mode: Literal["absolute", "relative"] = Field(default="absolute", description=(
        "absolute: max_drop in percentage points of top-1; relative: in percent of the float model's top-1."))
    max_rmse_increase: float = Field(
        default=0.0, ge=0, allow_inf_nan=False,
        description="Regression: RMSE increase (output units) accepted whatever max_drop allows; "
                    "the only allowance when the float RMSE is 0.")
    max_lsb_diff: int = Field(default=1, ge=0, description=(
        "Largest output difference, in LSBs, allowed per kernel between the device runtime and the host "
        "reference kernels (when exceeded end to end, each op is re-run alone to find the kernel)."))
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
    require_measured: bool = Field(default=False, description=(
        "Fail (exit 1) instead of UNVERIFIED when accuracy cannot be measured (no data beyond calibration, "
        "or nothing to compare with): for CI jobs that must never ship an unmeasured model."))
    min_cosine: float | None = Field(
        default=None, ge=-1, le=1, allow_inf_nan=False,
        description="Without labels: least mean cosine similarity of each output against the float model "
                    "(not checked when unset).")


class Tflm(_Strict):
    """TensorFlow Lite Micro settings: arena margin over the measured need."""

    arena_margin: Size = Field(default=1024, description=(
        "Bytes added to the measured TFLM arena (with arena_margin_ratio: the larger of the two)."))
    arena_margin_ratio: float = Field(default=0.1, ge=0, description=(
        "Fraction of the measured TFLM arena added as margin (0.1 = 10%)."))


class EthosU(_Strict):
    """Vela settings: see `vela --help` for the accepted names."""

    accelerator_config: str = Field(default="ethos-u55-128", description=(
        "Vela --accelerator-config: the NPU and its MACs per cycle, e.g. ethos-u55-128."))
    system_config: str | None = Field(default=None, description=(
        "Vela system config (clocks, buses, memory latencies) in config_file, e.g. Ethos_U55_High_End_Embedded "
        "(NPU at 500 MHz). Its core_clock must equal npu_clock."))
    memory_mode: str | None = Field(default=None, description=(
        "Vela memory mode: where weights (const) and tensors (arena) live, e.g. Shared_Sram (weights in flash, "
        "tensors in SRAM shared with the CPU)."))
    config_file: str | None = Field(default=None, description=(
        "Vela .ini read together with Vela's Arm/vela.ini (its system configs and memory modes are always "
        "there): a path, a file bundled with edgepipe (edgepipe.ini: Corstone_300_250MHz) or one of Vela's."))
    npu_clock: Hertz | None = Field(default=None, description=(
        "The NPU clock the SoC runs: checked against the system config's core_clock, which sets Vela's "
        "cycles-to-seconds (a 250 MHz SoC must not use a 500 MHz system config)."))


class CostModel(_Strict):
    """The CPU latency estimate: a per-kernel cost table (``kernels``), or sustained rates (see docs/latency.md)."""

    kernels: str | None = Field(default=None, description=(
        "Kernel family whose cost table estimates latency, e.g. cmsis-nn-dsp, cmsis-nn-helium, esp-nn, "
        "tflm-reference, xnnpack-neon (edgepipe/estimate/kernels.yaml). Needs device.clock. When unset, the "
        "rates below are used."))
    core: str | None = Field(default=None, description=(
        "The family's core this device has (e.g. cortex-m4 for cmsis-nn-dsp): its cycle factor and whether it "
        "was measured or derived."))
    int8_macs_per_second: float | None = Field(default=None, gt=0, description=(
        "Without `kernels`: sustained int8 MACs per second of the whole device."))
    float_macs_per_second: float | None = Field(default=None, gt=0, description=(
        "Without `kernels`: sustained float MACs per second of the whole device."))
    memory_bandwidth: BytesPerSecond | None = Field(default=None, description=(
        "Without `kernels`: sustained bytes per second, e.g. '1GB/s' (not modelled when unset)."))
    per_op_overhead: Seconds | None = Field(default=None, description=(
        "Without `kernels`: time added per op (dispatch), e.g. '2us'."))

    @model_validator(mode="after")
    def _known_family(self) -> "CostModel":
        """A family or core name that is not in the tables is refused when the profile loads."""
        if self.kernels is not None:
            from edgepipe.estimate.kernels import families

            known = families()
            if self.kernels not in known:
                raise ValueError(f"unknown kernel family {self.kernels!r}; known: {', '.join(known)}")
            cores = known[self.kernels].cores
            if self.core is not None and self.core not in cores:
                raise ValueError(f"{self.core!r} is not a core of kernel family {self.kernels!r}; "
                                 f"use one of: {', '.join(cores)}")
            if self.core is None and len(cores) > 1:
                raise ValueError(f"kernel family {self.kernels!r} runs on several cores: set cost_model.core "
                                 f"to one of {', '.join(cores)}")
        return self


class TargetProfile(_Strict):
    """A resolved target profile (after ``extends`` has been applied)."""

    name: str = Field(description="Profile name (default: the file name without .yaml).")
    description: str = Field(default="", description="One line for `edgepipe targets list`.")
    extends: str | None = Field(default=None, description=(
        "Parent profile whose keys this one inherits, merged one mapping at a time (e.g. _mcu)."))
    sources: list[str] = Field(default_factory=list, description=(
        "Where the figures come from: datasheets, measurements."))
    device: Device = Field(default=Device(), description=(
        "The board: CPU, architecture, cores, clock, NPU (shown in the report; the clock feeds the cost model)."))
    runtime: Runtime = Field(default=Runtime.LITERT, description=(
        "What runs the model on the device: litert (LiteRT/XNNPACK), tflm (TensorFlow Lite Micro) or "
        "ethos-u (compiled by Vela)."))
    threads: int = Field(default=1, ge=1, description=(
        "Interpreter threads; host latency is measured with this many."))
    memory: Memory = Field(default=Memory(), description=(
        "Flash and RAM budgets (what each counts: docs/target-profiles.md)."))
    latency: Seconds | None = Field(default=None, description=(
        "Budget for one inference at batch 1, checked against the device estimate (docs/latency.md)."))
    energy: Joules | None = Field(default=None, description=(
        "Budget for the energy of one inference, e.g. '150uJ' or '2mJ', checked against estimated latency x "
        "device.power.active (docs/latency.md)."))
    accelerator: Accelerator = Field(default=Accelerator(), description=(
        "What the device's kernels demand of the model: integer only, NPU only, channel multiples."))
    quantization: Quantization = Field(default=Quantization(), description=(
        "Converter defaults for this target (edgepipe.yaml may override them)."))
    accuracy: Accuracy = Field(default=Accuracy(), description=(
        "How much accuracy may be lost to quantization and pruning, and how closely the device's kernels "
        "must match the reference."))
    tflm: Tflm = Field(default=Tflm(), description="TensorFlow Lite Micro: margin over the measured arena.")
    ethos_u: EthosU = Field(default=EthosU(), description="Vela settings for Ethos-U targets.")
    cost_model: CostModel = Field(default=CostModel(), description=(
        "Sustained MAC rates, memory bandwidth and per-op overhead for the CPU latency estimate "
        "(docs/latency.md)."))

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
