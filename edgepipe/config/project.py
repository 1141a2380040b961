"""The project config, ``edgepipe.yaml``: which model, which data, how to read it.

Every field can be overridden on the command line; the CLI passes its flags
as ``overrides`` (dotted keys), which win over the file.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgepipe.config.schema import IODtype, Scheme
from edgepipe.config.yaml_io import YamlDoc, load_yaml, validation_error
from edgepipe.data.sources import SourceSpec
from edgepipe.prune.settings import PruneSettings

DEFAULT_NAME = "edgepipe.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Preprocess(_Strict):
    """Applied as ``(x * scale - mean) / std`` to every dataset before the model sees it."""

    scale: float = 1.0
    mean: float | list[float] = 0.0
    std: float | list[float] = 1.0


class DataConfig(_Strict):
    """Source specs (see :mod:`edgepipe.data.sources`)."""

    representative: Any = None
    eval: Any = None
    train: Any = None


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
        docs = [doc] if doc else [YamlDoc(Path("(command line)"), data, None)]
        raise validation_error(exc, docs, "docs/project-config.md") from None


def find_project(start: Path | None = None) -> Path | None:
    """``edgepipe.yaml`` in the current folder, if there is one."""
    candidate = (start or Path.cwd()) / DEFAULT_NAME
    return candidate if candidate.is_file() else None
