"""Each model input and output as the build treats it: name, shape, data array, preprocessing, task, labels.

The model says what its inputs and outputs are called and how they are
shaped; the project config's ``inputs:``/``outputs:`` sections (and, for a
one-input, one-output model, the top-level ``task`` and ``preprocess``) say
how to read their data and how to judge them. :func:`resolve` is the one
place those are put together, and the one place a name in the config that the
model does not have, or a dynamic dimension left unfixed, is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgepipe.config.project import ProjectConfig
from edgepipe.errors import ConfigError, InputError


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple            # with the batch axis (1), dynamic dimensions fixed from the config
    array: str              # key of its array in the data (.npz member or dict key)
    preprocess: tuple       # (scale, mean, std)
    fixed_from_config: bool = False


@dataclass(frozen=True)
class OutputSpec:
    name: str
    shape: tuple
    task: str               # classification, regression or raw
    labels: str | None      # key of its labels in the eval/train data, None: judged against the float model
    n_classes: int | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "task": self.task, "labels": self.labels}


@dataclass(frozen=True)
class IOSpec:
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]

    @property
    def single(self) -> bool:
        """One input and one output: the data source's ``x``/``y`` arrays feed it as they always did."""
        return len(self.inputs) == 1 and len(self.outputs) == 1

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def fixed_shapes(self) -> dict[str, tuple]:
        """Per-sample shapes the config fixed, by input name (for :func:`~edgepipe.keras_io.shapes.with_fixed_inputs`)."""
        return {i.name: tuple(i.shape[1:]) for i in self.inputs if i.fixed_from_config}

    def to_dict(self) -> dict:
        return {"inputs": [{"name": i.name, "shape": list(i.shape), "array": i.array,
                            "shape_from_config": i.fixed_from_config} for i in self.inputs],
                "outputs": [o.to_dict() for o in self.outputs]}


def resolve(project: ProjectConfig, io: dict, where: str, static: bool = True) -> IOSpec:
    """The :class:`IOSpec` of a model described by ``io`` (see :func:`edgepipe.keras_io.names.describe`).

    ``static``: data will be fed, so every dimension but the batch must be known (or fixed by the config).
    """
    in_names, out_names = [n for n, _ in io["inputs"]], [n for n, _ in io["outputs"]]
    _known(project, "inputs", in_names)
    _known(project, "outputs", out_names)
    one_in, one_out = len(in_names) == 1, len(out_names) == 1
    inputs = tuple(_input(project, name, shape, one_in, where, static) for name, shape in io["inputs"])
    outputs = tuple(_output(project, name, shape, one_out) for name, shape in io["outputs"])
    return IOSpec(inputs, outputs)


def _known(project: ProjectConfig, section: str, names: list[str]) -> None:
    for name in getattr(project, section):
        if name not in names:
            raise ConfigError(f"{project.source} ({section}.{name})",
                              f"the model has no {section[:-1]} named {name!r}; its {section} are {names}",
                              "name them as the model does (edgepipe inspect lists them)")


def _input(project: ProjectConfig, name: str, shape: list, only: bool, where: str, static: bool) -> InputSpec:
    cfg = project.inputs.get(name)
    p = (cfg.preprocess if cfg and cfg.preprocess else project.preprocess)
    fixed = list(shape[1:])
    if cfg and cfg.shape:
        if len(cfg.shape) != len(fixed) or any(d is not None and d != g for d, g in zip(fixed, cfg.shape)):
            raise ConfigError(f"{project.source} (inputs.{name}.shape)",
                              f"expected a shape that fits the model's {_show(fixed)}, found {cfg.shape}")
        fixed = list(cfg.shape)
    if static and any(d is None or d < 0 for d in fixed):
        raise InputError(f"{where}: input {name!r}", "a fixed shape (except batch)", f"shape {_show([None, *fixed])}",
                         f"set inputs.{name}.shape in edgepipe.yaml, e.g. {[d if d else 96 for d in fixed]}")
    array = cfg.array if cfg and cfg.array else ("x" if only else name)
    return InputSpec(name, (1, *fixed), array, (p.scale, p.mean, p.std), bool(cfg and cfg.shape))


def _output(project: ProjectConfig, name: str, shape: list, only: bool) -> OutputSpec:
    cfg = project.outputs.get(name)
    explicit = "task" in project.model_fields_set
    task = (cfg.task if cfg and cfg.task else project.task if (only or explicit) else "raw")
    labels = cfg.labels if cfg and cfg.labels else ("y" if only and task != "raw" else None)
    last = shape[-1] if shape else None
    n_classes = int(last) if task == "classification" and last and last > 0 else None
    return OutputSpec(name, tuple(shape), task, labels, n_classes)


def _show(dims) -> str:
    return "(" + ", ".join("None" if d is None or d < 0 else str(d) for d in dims) + ")"
