"""Load and validate everything a build reads, before any conversion starts.

Every bad input must fail here with exit 2, so a long conversion never runs
on data that cannot be right.

An ONNX file or a PyTorch module (:mod:`edgepipe.foreign`) is converted
here, its channels-first data arrays are turned channels-last as they are
read (:func:`_in_model_layout`, the one place), and the converted float
model is compared with the source framework on the representative samples
before anything else runs (exit 3 beyond tolerance); the comparison goes to
the report's ``inputs.model.source``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgepipe.config.project import ProjectConfig
from edgepipe.config.schema import Scheme, TargetProfile
from edgepipe.data.calibration import check_calibration_range
from edgepipe.data.samples import Samples, arrays_of
from edgepipe.data.sources import Dataset, load_dataset, load_named
from edgepipe.data.validate import apply_preprocess, check_calibration, check_labels, prepare_inputs
from edgepipe.emit.files import sha256_file
from edgepipe.errors import ConfigError, InputError
from edgepipe.pipeline.cache import StageCache, open_cache
from edgepipe.pipeline.io_spec import IOSpec, resolve


@dataclass
class Split:
    """One dataset, validated and preprocessed: ``x`` an array (one input) or
    :class:`~edgepipe.data.samples.Samples`; ``labels`` by output name (only the outputs that have them)."""

    x: object
    labels: dict
    where: str
    sha256: str
    held_out: bool = False  # representative samples kept out of calibration, standing in for eval data

    @property
    def y(self) -> np.ndarray | None:
        """The labels of a one-output model (or of the first labelled output)."""
        return next(iter(self.labels.values()), None)

    def subset(self, idx: np.ndarray, where: str, **changes) -> "Split":
        """The samples at ``idx`` (inputs and labels together), described as ``where``."""
        return dataclasses.replace(self, x=self.x[idx], labels={k: v[idx] for k, v in self.labels.items()},
                                   where=where, **changes)


@dataclass
class BuildInputs:
    model: object
    model_path: str
    model_sha256: str
    io: IOSpec
    representative: Split | None
    eval: Split | None
    train: Split | None = None
    notes: list[str] = field(default_factory=list)
    val: Split | None = None  # early stopping of fine-tuning; never the eval data that is reported
    source: dict | None = None  # an ONNX/PyTorch model: format, conversion, layouts, comparison with the source

    @property
    def input_shape(self) -> tuple:
        return self.io.inputs[0].shape

    @property
    def n_outputs(self) -> int | None:
        """Classes of the first output (its last axis), as one-output code expects."""
        shape = self.io.outputs[0].shape
        return int(shape[-1]) if shape and shape[-1] and shape[-1] > 0 else None

    def load_model(self):
        """The Keras model, loaded on first use (a build replayed from the cache never needs it),
        its dynamic dimensions fixed as the config says (``inputs.<name>.shape``)."""
        if self.model is None:
            self.model = _load_fixed(self.model_path, self.io)
        return self.model

    def hashes(self) -> dict:
        out = {"model": {"path": self.model_path, "sha256": self.model_sha256}}
        if self.source is not None:
            out["model"]["source"] = self.source
        for role in ("representative", "eval", "train", "val"):
            split = getattr(self, role)
            if split is not None:
                out[role] = {"source": split.where, "sha256": split.sha256, "samples": int(len(split.x)),
                             "labelled_outputs": sorted(split.labels)}
        return out


def load_inputs(project: ProjectConfig, target: TargetProfile, calibration_samples: int, scheme: Scheme,
                cache: StageCache | None = None) -> BuildInputs:
    """Model, representative, eval and train data, validated against each other.

    The model's inputs and outputs come from the cache, keyed by the file's
    hash, when this model was loaded before; the Keras model itself is then
    loaded only if a stage needs it (:meth:`BuildInputs.load_model`). Without
    eval data, representative samples the calibration does not use are held
    out as eval inputs, so the quantized model is still compared with the
    float one (see docs/verification.md).
    """
    path = project.model_path()
    if path is None:
        raise ConfigError(project.source, "no model given", "set 'model:' in edgepipe.yaml or pass --model")
    from edgepipe.foreign import parse_model_spec

    foreign, layouts = parse_model_spec(path), {}
    if foreign is not None:
        model, sha, io, converted, project = _convert_foreign(foreign, project)
        layouts = converted.layouts
    else:
        model, sha, io = _describe_model(path, project, cache or open_cache(False))
    rep = load_split(project, "representative", io, labelled=False, layouts=layouts)
    needs_rep = scheme in (Scheme.INT8, Scheme.INT16X8)
    if needs_rep and rep is None:
        raise ConfigError(project.source, f"scheme {scheme.value!r} needs representative data",
                          "set data.representative in edgepipe.yaml or pass --rep-data")
    ev = load_split(project, "eval", io, labelled=True, layouts=layouts)
    held_out = None
    if rep is not None:
        check_calibration(rep.x, target.quantization.min_calibration_samples, rep.where)
        rep, held_out = _calibration_split(rep, calibration_samples)
    train = load_split(project, "train", io, labelled=True, layouts=layouts)
    val = load_split(project, "val", io, labelled=True, layouts=layouts)
    notes = check_calibration_range(_first(rep.x), rep.where, _first(ev.x) if ev else None, ev.where if ev else "") \
        if rep is not None and needs_rep else []
    source = _against_source(converted, rep or ev, notes) if foreign is not None else None
    return BuildInputs(model, str(path), sha, io, rep, ev or held_out, train, notes=notes, val=val, source=source)


def _convert_foreign(spec, project: ProjectConfig):
    """(Keras model, sha256, IOSpec, the conversion, the project as the converted model sees it).

    ``inputs.<name>.shape`` of an ONNX file is in the source's layout: it goes to
    the converter, which fixes the dimensions, and is then dropped from the project
    (the converted model's channels-last shape is what the build checks data against).
    """
    from edgepipe.foreign.load import load_foreign
    from edgepipe.keras_io.names import describe

    if project.prune is not None:
        what = "an ONNX model" if spec.kind == "onnx" else "a PyTorch model"
        raise ConfigError(f"{project.source} (prune)", f"structured pruning is not available for {what}: the "
                          "converted graph is one opaque TensorFlow function",
                          "prune the source model before export (e.g. with Torch-Pruning) and remove 'prune:'")
    shapes = {name: tuple(cfg.shape) for name, cfg in project.inputs.items() if cfg.shape}
    converted = load_foreign(spec, shapes)
    _check_source_shapes(converted, shapes, project.source)
    if shapes:
        project = project.model_copy(update={"inputs": {
            name: cfg.model_copy(update={"shape": None}) for name, cfg in project.inputs.items()}})
    io = resolve(project, describe(converted.model), spec.where)
    return converted.model, converted.sha256, io, converted, project


def _check_source_shapes(converted, shapes: dict, source: str) -> None:
    """Every input's shape known, and as ``inputs.<name>.shape`` says, both in the source's layout (NCHW)."""
    from edgepipe.keras_io.names import input_names

    for name, t in zip(input_names(converted.model), converted.model.inputs):
        layout = converted.layouts[name]
        model_dims = [None, *(None if d is None else int(d) for d in t.shape[1:])]
        src = tuple(model_dims[k] for k in np.argsort(layout.perm))[1:]
        given = shapes.get(name)
        if given is not None and tuple(given) != src:
            raise ConfigError(f"{source} (inputs.{name}.shape)", f"expected the source model's per-sample shape "
                              f"{src} ({layout.source}), found {tuple(given)}")
        if any(d is None for d in src):
            raise InputError(f"{converted.where}: input {name!r}", "a fixed shape (except batch)",
                             f"shape {src} ({layout.source})",
                             f"set inputs.{name}.shape in edgepipe.yaml, in the source model's layout, "
                             f"e.g. {[d if d else 96 for d in src]}")


def _against_source(converted, split: Split | None, notes: list[str]) -> dict:
    """The conversion's report block with the comparison on ``split`` (exit 3 beyond tolerance)."""
    from edgepipe.foreign.reference import check, compare

    info = converted.describe()
    if split is None:
        note = (f"{converted.where}: the converted model was not compared with {converted.framework}: "
                "no representative or eval data")
        notes.append(note)
        info["comparison"] = None
        return info
    arrays = dict(split.x.named()) if isinstance(split.x, Samples) else {next(iter(converted.inputs)): split.x}
    result = compare(converted, arrays)
    result["data"] = split.where
    info["comparison"] = result
    check(result, converted.where, converted.framework)
    return info


def _first(x):
    """The first input's array (calibration range checks look at it)."""
    return arrays_of(x)[0]


def _calibration_split(rep: Split, n: int) -> tuple[Split, Split | None]:
    """(the samples calibration uses, the rest held out for label-free verification or None)."""
    if len(rep.x) <= n:
        return rep, None
    idx = np.linspace(0, len(rep.x) - 1, n).round().astype(int)  # evenly spaced: class-sorted data calibrates on all
    rest = np.setdiff1d(np.arange(len(rep.x)), idx)
    held = rep.subset(rest, f"{rep.where} (the {len(rest)} samples held out from calibration)",
                      sha256=rep.sha256 + f":held-out-{n}", held_out=True)
    return rep.subset(idx, rep.where), held


def _describe_model(path: Path, project: ProjectConfig, cache: StageCache) -> tuple[object, str, IOSpec]:
    """(Keras model or None, sha256, the IOSpec), the model's inputs and outputs by hash from the cache if known."""
    from edgepipe.keras_io.load import SUPPORTED, load_keras_model
    from edgepipe.keras_io.names import describe

    if not path.exists():
        raise InputError(str(path), SUPPORTED, "no such file or folder")
    sha = sha256_file(path)
    loaded = []

    def compute() -> dict:
        loaded.append(load_keras_model(path))
        return describe(loaded[0])

    kind = path.suffix if path.is_file() else "savedmodel"
    io = resolve(project, cache.get_or_compute("model-io", {"sha256": sha, "kind": kind}, compute), str(path))
    model = loaded[0] if loaded else None
    if model is not None and io.fixed_shapes():
        model = _fix(model, io)
    return model, sha, io


def _load_fixed(path: str, io: IOSpec):
    from edgepipe.keras_io.load import load_keras_model

    model = load_keras_model(path)
    return _fix(model, io) if io.fixed_shapes() else model


def _fix(model, io: IOSpec):
    from edgepipe.keras_io.shapes import with_fixed_inputs

    return with_fixed_inputs(model, io.fixed_shapes())


def load_split(project: ProjectConfig, role: str, io: IOSpec, labelled: bool,
               layouts: dict | None = None) -> Split | None:
    """One dataset of the project (``role``: representative, eval, train), checked against the model's inputs.

    ``labelled``: read each output's labels where the data has them (none is fine: a gate then compares
    with the float model, and fine-tuning distils from the unpruned model alone).
    ``layouts``: by input name, how a converted ONNX/PyTorch model's axes differ from its data's
    (:mod:`edgepipe.foreign.layout`).
    """
    spec = project.source_spec(role)
    if spec is None:
        return None
    if io.single:
        return _single_split(spec, role, io, labelled, project.source, layouts or {})
    return _named_split(spec, role, io, labelled, project.source, layouts or {})


def _in_model_layout(ds: Dataset, inp, layouts: dict, role: str, from_folder: bool) -> Dataset:
    """The one place channels-first data becomes channels-last: a source-layout array (NCHW) of a
    converted ONNX/PyTorch model, transposed as its input was. Image folders are read channels-last already."""
    from edgepipe.foreign.layout import to_model, to_source

    layout = layouts.get(inp.name)
    if layout is None or not layout.moved or from_folder:
        return ds
    want = tuple(to_source(np.zeros(inp.shape, np.uint8), layout).shape[1:])
    got = tuple(getattr(ds.x, "shape", ())[1:])
    if got != want:
        raise InputError(f"{role} data {ds.where}", f"samples of shape {want} ({layout.source}, the source "
                         f"model's layout; edgepipe makes them {layout.model})", f"samples of shape {got}")
    return dataclasses.replace(ds, x=to_model(np.asarray(ds.x), layout))


def _single_split(spec, role: str, io: IOSpec, labelled: bool, source: str, layouts: dict) -> Split:
    """A one-input, one-output model: the source's ``x`` (and ``y``) arrays, as always."""
    ds: Dataset = load_dataset(spec)
    inp, out = io.inputs[0], io.outputs[0]
    ds = _in_model_layout(ds, inp, layouts, role, spec.path is not None and spec.path.is_dir())
    x = prepare_inputs(ds, inp.shape, role)
    x = apply_preprocess(x, *inp.preprocess, f"{role} data {ds.where}", source)
    labels = {}
    if labelled and ds.y is not None and out.labels is not None:
        labels[out.name] = check_labels(ds, len(x), out.task, out.n_classes)
    return Split(x, labels, ds.where, _digest(ds))


def _array_of(inp, spec, io: IOSpec) -> str:
    """The array an input reads: ``inputs.<name>.array``; for a model's only input left at the default
    ``x``, the source's own ``x`` key (``{path: data.npz, x: x_calib}``), as for a one-output model."""
    return spec.x_key if len(io.inputs) == 1 and inp.array == "x" else inp.array


def _named_split(spec, role: str, io: IOSpec, labelled: bool, source: str, layouts: dict) -> Split:
    """Several inputs or outputs: one array per input and per labelled output, found by name."""
    keys = [o.labels for o in io.outputs if o.labels] if labelled else []
    names = [_array_of(inp, spec, io) for inp in io.inputs]
    named = load_named(spec, names, keys)
    arrays = []
    for inp, array in zip(io.inputs, names):
        ds = Dataset(named.arrays[array], None, f"{named.where}[{array}]")
        ds = _in_model_layout(ds, inp, layouts, role, False)
        x = prepare_inputs(ds, inp.shape, f"{role} data for input {inp.name!r}:")
        arrays.append(apply_preprocess(x, *inp.preprocess, f"{role} data {ds.where}", source))
    x = Samples(arrays, io.input_names)
    labels = {o.name: check_labels(Dataset(x, named.labels[o.labels], f"{named.where}[{o.labels}]"), len(x),
                                   o.task, o.n_classes)
              for o in io.outputs if o.labels in named.labels}
    h = hashlib.sha256(named.digest.encode())
    return Split(x, labels, named.where, h.hexdigest())


def _digest(ds: Dataset) -> str:
    if ds.files:
        h = hashlib.sha256()
        for f in ds.files:
            h.update(sha256_file(f).encode())
        return h.hexdigest()
    h = hashlib.sha256(np.ascontiguousarray(ds.x).tobytes())
    if ds.y is not None:
        h.update(np.ascontiguousarray(ds.y).tobytes())
    return h.hexdigest()
