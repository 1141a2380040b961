"""The project config, ``edgepipe.yaml``: which model, which data, how to read it.

Every field can be overridden on the command line; the CLI passes its flags
as ``overrides`` (dotted keys), which win over the file.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from edgepipe.config.schema import IODtype, Scheme
from edgepipe.config.yaml_io import YamlDoc, _has_path, load_yaml, validation_error
from edgepipe.data.sources import SourceSpec
from edgepipe.prune.settings import PruneSettings

DEFAULT_NAME = "edgepipe.yaml"


class _Strict(BaseModel):
    """Unknown keys and non-finite numbers (``.nan``, ``.inf``, ``--scale inf``) are refused everywhere."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _per_channel(v: Any) -> float | list[float]:
    """A finite number, or a non-empty list of them (one per channel); one error, at the key."""
    def number(x: Any) -> float:
        try:
            value = float(x) if isinstance(x, (int, float, str)) and not isinstance(x, bool) else math.nan
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number or a list of them (one per channel), found {v!r}")
        return value

    if isinstance(v, (list, tuple)):
        if not v:
            raise ValueError("expected a number or one per channel, found an empty list")
        return [number(x) for x in v]
    return number(v)


PerChannel = Annotated[float | list[float], BeforeValidator(_per_channel)]


class Preprocess(_Strict):
    """Applied as ``(x * scale - mean) / std`` to every dataset before the model sees it.

    ``scale`` must not be 0 and every ``std`` must be above 0; a list of
    ``mean``/``std`` has one value per channel (checked against the model's
    input when data is loaded).
    """

    scale: float = Field(default=1.0, description="Multiplies every input first; not 0 (e.g. 1/255 for 8-bit pixels).")
    mean: PerChannel = Field(default=0.0, description="Subtracted after scaling: a number or one per channel.")
    std: PerChannel = Field(default=1.0, description=(
        "Divides after subtracting the mean: above 0, a number or one per channel."))

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: float) -> float:
        if v == 0:
            raise ValueError("expected a non-zero scale, found 0 (every input would become the same value)")
        return v

    @field_validator("std")
    @classmethod
    def _std(cls, v: float | list[float]) -> float | list[float]:
        if min(v if isinstance(v, list) else [v]) <= 0:
            raise ValueError(f"expected every std above 0, found {v!r} (dividing by it gives Inf or NaN)")
        return v


class InputConfig(_Strict):
    """One model input, by its Keras ``Input`` name (the .tflite's signature key)."""

    array: str | None = Field(default=None, description=(
        "Name of this input's array in the data files (.npz) or in the dict a data function returns; "
        "default: the input's own name (for a one-input model, the data source's 'x')."))
    shape: list[int] | None = Field(default=None, description=(
        "Per-sample shape (no batch axis) that fixes the model's dynamic dimensions, e.g. [96, 96, 3] "
        "for a None x None input; recorded in the report."))
    preprocess: Preprocess | None = Field(default=None, description=(
        "(x * scale - mean) / std for this input; default: the top-level preprocess."))

    @field_validator("shape")
    @classmethod
    def _shape(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or min(v) < 1):
            raise ValueError(f"expected a per-sample shape of sizes >= 1 (no batch axis), found {v!r}")
        return v


class OutputConfig(_Strict):
    """One model output, by its Keras output name (the .tflite's signature key)."""

    task: Literal["classification", "regression", "raw"] | None = Field(default=None, description=(
        "classification (class scores), regression (values with targets) or raw (detector heads, "
        "features: compared with the float model only). Default: the top-level task for a one-output "
        "model or when set, else raw."))
    labels: str | None = Field(default=None, description=(
        "Name of this output's label array in the eval/train data (.npz) or in the labels dict a data "
        "function returns; default 'y' for a one-output model, else none (then it is verified against "
        "the float model: agreement, SQNR, cosine)."))


class DataConfig(_Strict):
    """Source specs (see :mod:`edgepipe.data.sources`); their form is checked when the config loads."""

    representative: Any = Field(default=None, description=(
        "Inputs for calibration (no labels needed); --rep-data on the command line."))
    eval: Any = Field(default=None, description=(
        "Held-out inputs, with labels where there are any: accuracy is measured on them with the device's "
        "kernels (without labels, against the float model); --eval-data."))
    train: Any = Field(default=None, description=(
        "Training data, for fine-tuning after pruning; labels optional (without them fine-tuning distils from "
        "the unpruned model alone); --train-data."))
    val: Any = Field(default=None, description=(
        "Validation data for fine-tuning's early stopping (default: every 10th training sample, kept out of "
        "training); never the eval data, whose figure is reported and gated; --val-data."))

    @field_validator("representative", "eval", "train", "val")
    @classmethod
    def _source(cls, v: Any) -> Any:
        if v is not None:
            SourceSpec.check_form(v)
        return v


class QuantOverrides(_Strict):
    """Project-level overrides of the target's quantization defaults."""

    scheme: Scheme | None = Field(default=None, description="Converter scheme (int8, int16x8, float16, dynamic).")
    input_dtype: IODtype | None = Field(default=None, description="Type of the model's input tensors.")
    output_dtype: IODtype | None = Field(default=None, description="Type of the model's output tensors.")
    per_channel: bool | None = Field(default=None, description="Per-channel weight scales.")
    calibration_samples: int | None = Field(default=None, ge=1, description=(
        "Representative samples used for calibration."))
    fc_weights: Literal["auto", "per-channel", "per-tensor"] | None = Field(default=None, description=(
        "FULLY_CONNECTED weight scales: auto (per-tensor where the runtime pays for per-channel, if accuracy "
        "allows), per-channel or per-tensor."))
    equalize: Literal["auto", "on", "off"] | None = Field(default=None, description=(
        "Cross-layer equalization before conversion: auto (tried when accuracy misses), on or off."))
    bias_correction: Literal["auto", "on", "off"] | None = Field(default=None, description=(
        "Empirical bias correction before conversion: auto (tried when accuracy misses), on or off."))


class ProjectConfig(_Strict):
    model: str | None = Field(default=None, description=(
        "The trained model: .keras, .h5, a SavedModel folder or a .onnx file, relative to this file, or a "
        "PyTorch factory returning (module, example_input): 'file.py:function' (relative to this file) or "
        "'package.module:function' (importable); --model. See docs/onnx-pytorch.md."))
    task: Literal["classification", "regression", "raw"] = Field(default="classification", description=(
        "What the outputs are: class scores, values with targets, or raw (compared with the float model "
        "only); --task."))
    target: str | list[str] | None = Field(default=None, description=(
        "Target profile name(s) or path(s) to build for when --target is not given."))
    output: str = Field(default="edgepipe-out", description="Artifacts go to <output>/<target>/; --out.")
    data: DataConfig = Field(default=DataConfig(), description=(
        "Data sources: representative (calibration), eval (labelled), train (fine-tuning)."))
    preprocess: Preprocess = Field(default=Preprocess(), description=(
        "(x * scale - mean) / std, applied to every dataset before the model sees it."))
    inputs: dict[str, InputConfig] = Field(default_factory=dict, description=(
        "Per model input, by its Keras Input name: array name, shape, preprocessing."))
    outputs: dict[str, OutputConfig] = Field(default_factory=dict, description=(
        "Per model output, by its Keras output name: task and label array."))
    quantization: QuantOverrides = Field(default=QuantOverrides(), description=(
        "Overrides of the target's quantization defaults."))
    prune: PruneSettings | None = Field(default=None, description=(
        "Structured pruning before conversion (docs/pruning.md); none when absent."))
    emit: list[Literal["c"]] = Field(default_factory=list, description=(
        "Extra artifacts: 'c' = the model as a C array and an op resolver (always on for MCU and NPU targets)."))
    base_dir: Path = Field(default=Path("."), exclude=True)
    source: str = Field(default="(command line)", exclude=True)

    def model_path(self) -> Path | None:
        """The model file or folder, relative to this file; an importable ``package.module:factory`` as written."""
        from edgepipe.foreign.spec import is_factory

        if not self.model:
            return None
        if is_factory(self.model) and ".py:" not in self.model and not Path(self.base_dir, self.model).exists():
            return Path(self.model)
        return Path(self.base_dir, self.model)

    def source_spec(self, role: str) -> SourceSpec | None:
        """The parsed data source for 'representative', 'eval' or 'train'."""
        raw = getattr(self.data, role)
        if raw is None:
            return None
        return SourceSpec.parse(raw, self.base_dir, f"{self.source} (data.{role})")


class Removed:
    """An override value that removes its key from the config (``edgepipe fit`` turns ``prune`` off
    for one candidate this way). A class rather than an object so it survives pickling to workers."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Removed)

    def __hash__(self) -> int:
        return hash(Removed)

    def __repr__(self) -> str:
        return "Removed()"


def load_project(path: str | Path | None, overrides: dict[str, Any] | None = None) -> ProjectConfig:
    """Read ``edgepipe.yaml`` (if any) and apply CLI overrides (dotted keys)."""
    doc = None
    data: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        doc = load_yaml(path)
        data = copy.deepcopy(doc.data)
        base = Path(path).resolve().parent
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        if isinstance(value, Removed):
            node.pop(last, None)
        else:
            node[last] = value
    data["base_dir"] = base
    data["source"] = str(path) if path else "(command line)"
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as exc:
        given: dict[str, Any] = {}  # the command line's values win, so an error in one is named there
        for dotted, value in (overrides or {}).items():
            if value is not None and not isinstance(value, Removed):
                *parents, last = dotted.split(".")
                node = given
                for key in parents:
                    node = node.setdefault(key, {})
                node[last] = value
        cmd = YamlDoc(Path("(command line)"), given or data, None)
        docs = [doc, cmd] if doc else [cmd]
        if _has_path(given, tuple(exc.errors()[0]["loc"])):
            docs.reverse()
        raise validation_error(exc, docs, "docs/project-config.md") from None


def find_project(start: Path | None = None) -> Path | None:
    """``edgepipe.yaml`` in the current folder, if there is one."""
    candidate = (start or Path.cwd()) / DEFAULT_NAME
    return candidate if candidate.is_file() else None
