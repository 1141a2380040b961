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

    scale: float = 1.0
    mean: PerChannel = 0.0
    std: PerChannel = 1.0

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


class DataConfig(_Strict):
    """Source specs (see :mod:`edgepipe.data.sources`); their form is checked when the config loads."""

    representative: Any = None
    eval: Any = None
    train: Any = None

    @field_validator("representative", "eval", "train")
    @classmethod
    def _source(cls, v: Any) -> Any:
        if v is not None:
            SourceSpec.check_form(v)
        return v


class QuantOverrides(_Strict):
    """Project-level overrides of the target's quantization defaults."""

    scheme: Scheme | None = None
    input_dtype: IODtype | None = None
    output_dtype: IODtype | None = None
    per_channel: bool | None = None
    calibration_samples: int | None = Field(default=None, ge=1)


class ProjectConfig(_Strict):
    model: str | None = None
    task: Literal["classification", "regression"] = "classification"
    target: str | list[str] | None = None
    output: str = "edgepipe-out"
    data: DataConfig = DataConfig()
    preprocess: Preprocess = Preprocess()
    quantization: QuantOverrides = QuantOverrides()
    prune: PruneSettings | None = None
    emit: list[Literal["c"]] = Field(default_factory=list)  # extra artifacts; MCU targets always get "c"
    base_dir: Path = Field(default=Path("."), exclude=True)
    source: str = Field(default="(command line)", exclude=True)

    def model_path(self) -> Path | None:
        return Path(self.base_dir, self.model) if self.model else None

    def source_spec(self, role: str) -> SourceSpec | None:
        """The parsed data source for 'representative', 'eval' or 'train'."""
        raw = getattr(self.data, role)
        if raw is None:
            return None
        return SourceSpec.parse(raw, self.base_dir, f"{self.source} (data.{role})")


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
        node[last] = value
    data["base_dir"] = base
    data["source"] = str(path) if path else "(command line)"
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as exc:
        given: dict[str, Any] = {}  # the command line's values win, so an error in one is named there
        for dotted, value in (overrides or {}).items():
            if value is not None:
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
