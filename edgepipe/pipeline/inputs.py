"""Load and validate everything a build reads, before any conversion starts.

Every bad input must fail here with exit 2, so a long conversion never runs
on data that cannot be right.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgepipe.config.project import ProjectConfig
from edgepipe.config.schema import Scheme, TargetProfile
from edgepipe.data.calibration import check_calibration_range
from edgepipe.data.sources import Dataset, load_dataset
from edgepipe.data.validate import apply_preprocess, check_calibration, check_labels, prepare_inputs
from edgepipe.emit.files import sha256_file
from edgepipe.errors import ConfigError, InputError
from edgepipe.pipeline.cache import StageCache, open_cache


@dataclass
class Split:
    x: np.ndarray
    y: np.ndarray | None
    where: str
    sha256: str


@dataclass
class BuildInputs:
    model: object
    model_path: str
    model_sha256: str
    input_shape: tuple
    n_outputs: int | None
    representative: Split | None
    eval: Split | None
    train: Split | None = None
    notes: list[str] = field(default_factory=list)

    def load_model(self):
        """The Keras model, loaded on first use (a build replayed from the cache never needs it)."""
        if self.model is None:
            from edgepipe.keras_io.load import load_keras_model

            self.model = load_keras_model(self.model_path)
        return self.model

    def hashes(self) -> dict:
        out = {"model": {"path": self.model_path, "sha256": self.model_sha256}}
        for role in ("representative", "eval", "train"):
            split = getattr(self, role)
            if split is not None:
                out[role] = {"source": split.where, "sha256": split.sha256, "samples": int(len(split.x))}
        return out


def load_inputs(project: ProjectConfig, target: TargetProfile, calibration_samples: int, scheme: Scheme,
                cache: StageCache | None = None) -> BuildInputs:
    """Model, representative, eval and train data, validated against each other.

    The model's input shape comes from the cache, keyed by the file's hash,
    when this model was loaded before; the Keras model itself is then loaded
    only if a stage needs it (:meth:`BuildInputs.load_model`).
    """
    path = project.model_path()
    if path is None:
        raise ConfigError(project.source, "no model given", "set 'model:' in edgepipe.yaml or pass --model")
    model, sha, shape, n_out = _describe_model(path, cache or open_cache(False))
    n_classes = n_out if project.task == "classification" else None
    rep = load_split(project, "representative", shape, need_labels=False)
    needs_rep = scheme in (Scheme.INT8, Scheme.INT16X8)
    if needs_rep and rep is None:
        raise ConfigError(project.source, f"scheme {scheme.value!r} needs representative data",
                          "set data.representative in edgepipe.yaml or pass --rep-data")
    if rep is not None:
        check_calibration(rep.x, target.quantization.min_calibration_samples, rep.where)
        rep.x = _subsample(rep.x, calibration_samples)
    ev = load_split(project, "eval", shape, need_labels=True, task=project.task, n_classes=n_classes)
    train = load_split(project, "train", shape, need_labels=True, task=project.task, n_classes=n_classes)
    notes = check_calibration_range(rep.x, rep.where, ev.x if ev else None, ev.where if ev else "") \
        if rep is not None and needs_rep else []
    return BuildInputs(model, str(path), sha, shape, n_out, rep, ev, train, notes=notes)


def _describe_model(path: Path, cache: StageCache) -> tuple[object, str, tuple, int | None]:
    """(Keras model or None, sha256, input shape, number of outputs), by hash from the cache if known."""
    from edgepipe.keras_io.load import SUPPORTED, load_keras_model, model_io

    if not path.exists():
        raise InputError(str(path), SUPPORTED, "no such file or folder")
    sha = sha256_file(path)
    loaded = []

    def describe() -> dict:
        loaded.append(load_keras_model(path))
        shape, n_out = model_io(loaded[0])
        return {"input_shape": list(shape), "n_outputs": n_out}

    kind = path.suffix if path.is_file() else "savedmodel"
    info = cache.get_or_compute("model-io", {"sha256": sha, "kind": kind}, describe)
    return (loaded[0] if loaded else None), sha, tuple(info["input_shape"]), info["n_outputs"]


def load_split(project: ProjectConfig, role: str, shape: tuple, need_labels: bool,
               task: str = "classification", n_classes: int | None = None) -> Split | None:
    """One dataset of the project (``role``: representative, eval, train), checked against ``shape``."""
    spec = project.source_spec(role)
    if spec is None:
        return None
    ds: Dataset = load_dataset(spec, need_labels=need_labels)
    x = prepare_inputs(ds, shape, role)
    p = project.preprocess
    x = apply_preprocess(x, p.scale, p.mean, p.std, f"{role} data {ds.where}", project.source)
    y = check_labels(ds, len(x), task, n_classes) if need_labels else None
    digest = _digest(ds)
    return Split(x, y, ds.where, digest)


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


def _subsample(x: np.ndarray, n: int) -> np.ndarray:
    """Evenly spaced samples, so class-sorted data still calibrates on every class."""
    if len(x) <= n:
        return x
    idx = np.linspace(0, len(x) - 1, n).round().astype(int)
    return x[idx]
