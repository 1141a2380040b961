"""Load datasets from the places build scripts keep them.

A *source spec* is one of:

- ``"data.npz"`` — arrays ``x`` (and ``y``) inside; ``{path, x: key, y: key}`` picks other keys;
- ``"x.npy"`` — one array (labels from a second ``y:`` path);
- ``"images/"`` — a folder with one sub-folder per class (sorted names = class ids);
- ``"package.module:function"`` — a callable returning ``x`` or ``(x, y)``.

Arrays from ``.npy`` are memory-mapped, so a large eval set is not read
until it is used; with ``lazy=True`` an image folder is too (:class:`LazyImages`).
"""

from __future__ import annotations

import hashlib
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgepipe.errors import ConfigError, InputError

_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_SPEC_KEYS = {"path", "x", "y", "y_path", "callable"}


@dataclass(frozen=True)
class Dataset:
    """Inputs, optional labels, and where they came from (for messages and hashes)."""

    x: np.ndarray
    y: np.ndarray | None
    where: str
    files: tuple[Path, ...] = ()

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source: exactly one of ``path`` or ``callable`` is set."""

    path: Path | None = None
    x_key: str = "x"
    y_key: str | None = "y"
    y_path: Path | None = None
    callable: str | None = None

    @staticmethod
    def check_form(spec: Any) -> None:
        """Raise ValueError ('expected ..., found ...') unless ``spec`` has the form of a data source.

        The config loader calls this, so a bad form is named with its line; :meth:`parse` calls it too.
        """
        if isinstance(spec, Path):
            spec = str(spec)
        if isinstance(spec, str):
            if not spec.strip():
                raise ValueError("expected a path, 'module:function' or a mapping, found an empty string")
            return
        if not isinstance(spec, dict):
            raise ValueError(f"expected a path, 'module:function' or a mapping, found {type(spec).__name__} {spec!r}")
        unknown = sorted(map(str, set(spec) - _SPEC_KEYS))
        if unknown:
            raise ValueError(f"expected keys among {', '.join(sorted(_SPEC_KEYS))}, found unknown key(s) {unknown}")
        for key in ("path", "callable", "y_path", "x", "y"):
            value = spec.get(key)
            if key in spec and not (isinstance(value, str) and value.strip()) and not (key == "y" and value is None):
                what = "an array name or null" if key == "y" else "an array name" if key == "x" else "a string"
                raise ValueError(f"expected {key!r} to be {what}, found {type(value).__name__} {value!r}")
        if "path" not in spec and "callable" not in spec:
            raise ValueError("expected 'path' or 'callable' in the data source, found neither")
        if "path" in spec and "callable" in spec:
            raise ValueError("expected one of 'path' or 'callable', found both")
        if "callable" in spec and not _CALLABLE.match(spec["callable"]):
            raise ValueError(f"expected 'callable' as 'package.module:function', found {spec['callable']!r}")

    @classmethod
    def parse(cls, spec: Any, base: Path, where: str) -> "SourceSpec":
        """From a config value; relative paths are relative to ``base``."""
        try:
            cls.check_form(spec)
        except ValueError as exc:
            raise ConfigError(where, str(exc)) from None
        if isinstance(spec, (str, Path)):
            spec = {"path": str(spec)}
        text = spec.get("callable") or spec.get("path")
        y_path = Path(base, spec["y_path"]) if spec.get("y_path") else None
        is_callable = "callable" in spec or (_CALLABLE.match(str(text)) and not Path(base, text).exists())
        if is_callable:
            return cls(callable=str(text), x_key=spec.get("x", "x"), y_key=spec.get("y", "y"))
        return cls(path=Path(base, text), x_key=spec.get("x", "x"), y_key=spec.get("y", "y"), y_path=y_path)


def load_dataset(spec: SourceSpec, need_labels: bool = False, lazy: bool = False) -> Dataset:
    """Load a dataset; a missing file or key names what exists instead.

    ``lazy``: an image folder is read as it is sliced (``.npy`` is always memory-mapped).
    """
    if spec.callable:
        ds = _from_callable(spec.callable)
    elif spec.path is None or not spec.path.exists():
        raise InputError(str(spec.path), "a data file or folder", "no such file")
    elif spec.path.is_dir():
        ds = _from_image_folder(spec.path, lazy)
    elif spec.path.suffix == ".npz":
        ds = _from_npz(spec)
    elif spec.path.suffix == ".npy":
        ds = _from_npy(spec)
    else:
        raise InputError(str(spec.path), "a .npz, .npy, image folder or module:function",
                         f"a {spec.path.suffix or 'suffix-less'} file")
    if not getattr(ds.x, "shape", ()):
        raise InputError(ds.where, "an array of samples (batch axis first)", "a single value")
    if need_labels and ds.y is None:
        raise InputError(ds.where, "labels (a 'y' array) for evaluation", "inputs only",
                         "add labels to the file or name them with 'y:'")
    if ds.y is not None and not ds.y.shape:
        raise InputError(f"{ds.where} labels", "an array of labels, one per sample", "a single value")
    return ds


@dataclass(frozen=True)
class NamedArrays:
    """Arrays found by name for a model with several inputs or outputs (see :func:`load_named`)."""

    arrays: dict
    labels: dict
    where: str
    digest: str


def load_named(spec: SourceSpec, inputs: list[str], labels: list[str]) -> NamedArrays:
    """The arrays named ``inputs`` (all required) and ``labels`` (those present) of an .npz or a data function.

    A data function returns a dict of input arrays, or ``(inputs, labels)`` as two dicts; a missing
    input names the arrays that exist instead.
    """
    if spec.callable:
        found, found_labels, where = _named_from_callable(spec.callable)
    elif spec.path is None or not spec.path.exists():
        raise InputError(str(spec.path), "a data file", "no such file")
    elif spec.path.suffix != ".npz":
        raise InputError(str(spec.path), f"an .npz with one array per input ({', '.join(inputs)}) or a "
                         "'module:function' returning a dict", f"a {spec.path.suffix or 'suffix-less'} "
                         "file (one array cannot feed several inputs)")
    else:
        found, found_labels, where = _named_from_npz(spec.path, set(inputs) | set(labels))
    missing = [k for k in inputs if k not in found]
    if missing:
        raise InputError(f"{where}", f"arrays named {inputs} (one per model input)", f"arrays {sorted(found)}",
                         "name each input's array with inputs.<name>.array in edgepipe.yaml")
    picked = {k: found[k] for k in inputs}
    got_labels = {k: v for k, v in {**found, **found_labels}.items() if k in labels}
    for key, value in (*picked.items(), *got_labels.items()):
        if not getattr(value, "shape", ()):
            raise InputError(f"{where}[{key}]", "an array of samples (batch axis first)", "a single value")
    h = hashlib.sha256()
    for key in sorted(picked) + sorted(got_labels):
        a = np.ascontiguousarray((picked | got_labels)[key])
        h.update(f"{key}{a.dtype.str}{a.shape};".encode() + memoryview(a).cast("B").tobytes())
    return NamedArrays(picked, got_labels, where, h.hexdigest())


def _named_from_npz(path: Path, wanted: set[str]) -> tuple[dict, dict, str]:
    try:
        arrays = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any failure means an unreadable file
        raise InputError(str(path), "a readable .npz archive", _what(exc)) from None
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise InputError(str(path), "a .npz archive of arrays", "a single .npy array", "save it with np.savez")
    with arrays:
        return {k: _npz_member(path, arrays, k) if k in wanted else None for k in arrays.keys()}, {}, str(path)


def _named_from_callable(target: str) -> tuple[dict, dict, str]:
    result = _call(target)
    x, y = result if isinstance(result, tuple) and len(result) == 2 else (result, {})
    if not isinstance(x, dict) or not isinstance(y, dict):
        raise InputError(target, "a dict of input arrays, or (inputs, labels) as two dicts keyed by name",
                         f"{type(x).__name__}" + (f" and {type(y).__name__}" if y != {} else ""))
    try:
        return ({str(k): np.asarray(v) for k, v in x.items()}, {str(k): np.asarray(v) for k, v in y.items()},
                target)
    except Exception as exc:  # noqa: BLE001 - ragged lists and the like
        raise InputError(target, "arrays", f"values numpy cannot make an array of ({_what(exc)})") from None


def _from_npz(spec: SourceSpec) -> Dataset:
    try:
        arrays = np.load(spec.path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any failure means an unreadable file
        raise InputError(str(spec.path), "a readable .npz archive", _what(exc)) from None
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise InputError(str(spec.path), "a .npz archive of arrays", "a single .npy array", "save it with np.savez")
    with arrays:
        keys = list(arrays.keys())
        if spec.x_key not in keys:
            raise InputError(f"{spec.path}", f"an array named {spec.x_key!r}", f"arrays {keys}",
                             "name the inputs with 'x:' in the data source")
        y = None
        if spec.y_path is not None:
            y = _npy(spec.y_path)
        elif spec.y_key and spec.y_key in keys:
            y = _npz_member(spec.path, arrays, spec.y_key)
        x = _npz_member(spec.path, arrays, spec.x_key)
    return Dataset(x, y, f"{spec.path}[{spec.x_key}]", (spec.path,))


def _npz_member(path: Path, arrays: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    """One array of the archive, its header checked before any memory is given to it.

    Refused: pickled object arrays (never unpickled) and a header whose shape
    and dtype do not add up to the bytes stored (a lying header could ask for
    petabytes).
    """
    where = f"{path}[{key}]"
    name = f"{key}.npy" if f"{key}.npy" in arrays.zip.namelist() else key
    fmt = np.lib.format
    try:
        with arrays.zip.open(name) as f:
            version = fmt.read_magic(f)
            read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
            if read_header is not None:
                shape, _, dtype = read_header(f)
                header_bytes = f.tell()
        if read_header is not None:
            if dtype.hasobject:
                raise InputError(where, "an array of numbers", f"an array of Python objects (dtype {dtype})",
                                 "edgepipe never unpickles data; save numeric arrays")
            declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
            stored = arrays.zip.getinfo(name).file_size - header_bytes
            if declared != stored:
                raise InputError(where, f"{declared} bytes of data (shape {shape}, dtype {dtype}, as its header says)",
                                 f"{stored} bytes", "the file is truncated or corrupt; save it again")
        value = arrays[key]
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt member, whatever numpy or zlib says about it
        raise InputError(where, "a readable .npy array", _what(exc)) from None
    if not isinstance(value, np.ndarray):
        raise InputError(where, "a .npy array", f"a {type(value).__name__} member")
    return value


def _what(exc: BaseException) -> str:
    """'Type: message' on one line."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _from_npy(spec: SourceSpec) -> Dataset:
    y = _npy(spec.y_path) if spec.y_path else None
    files = (spec.path,) + ((spec.y_path,) if spec.y_path else ())
    return Dataset(_npy(spec.path), y, str(spec.path), files)


def _npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(str(path), "a .npy file", "no such file")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise InputError(str(path), "a readable .npy array", _what(exc)) from None


def _from_image_folder(root: Path, lazy: bool = False) -> Dataset:
    """Folder/<class>/<image>; class ids follow the sorted sub-folder names.

    ``lazy``: images are read when sliced (:class:`LazyImages`), not now.
    """
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise InputError(str(root), "one sub-folder per class with images inside", "no sub-folders")
    files = [(f, label) for label, name in enumerate(classes) for f in sorted((root / name).iterdir())
             if f.suffix.lower() in _IMAGE_EXT]
    if not files:
        raise InputError(str(root), f"images ({', '.join(sorted(_IMAGE_EXT))})", "none")
    images = LazyImages(tuple(f for f, _ in files))
    x = images if lazy else images[:]
    return Dataset(x, np.asarray([label for _, label in files], np.int64), str(root), (root,))


class LazyImages:
    """An image folder that reads its files only when sliced; ``shape``, ``len``, ``dtype`` like an array.

    Every image must have the shape of the first one (a channel axis is added to grey images).
    """

    def __init__(self, files: tuple[Path, ...]):
        self.files = files
        first = self._read(files[0], None)
        self.shape = (len(files), *first.shape)
        self.dtype = first.dtype

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self._read(self.files[index], self.shape[1:])
        picked = self.files[index] if isinstance(index, slice) else [self.files[i] for i in np.asarray(index)]
        return np.stack([self._read(f, self.shape[1:]) for f in picked]) if len(picked) else \
            np.zeros((0, *self.shape[1:]), self.dtype)

    @staticmethod
    def _read(path: Path, shape: tuple | None) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(path) as im:
                img = np.asarray(im)
        except Exception as exc:  # noqa: BLE001 - not an image, truncated, too large: the file is the problem
            raise InputError(str(path), "an image file PIL can read", _what(exc)) from None
        if img.ndim not in (2, 3) or not np.issubdtype(img.dtype, np.number):
            raise InputError(str(path), "a grey or colour image", f"an array of shape {img.shape}, dtype {img.dtype}")
        img = img if img.ndim == 3 else img[..., None]
        if shape is not None and img.shape != tuple(shape):
            raise InputError(str(path), f"an image of shape {tuple(shape)} like the others", f"shape {img.shape}")
        return img


def _from_callable(target: str) -> Dataset:
    result = _call(target)
    if isinstance(result, tuple) and len(result) == 2:
        x, y = result
    else:
        x, y = result, None
    try:
        x = np.asarray(x)
        y = None if y is None else np.asarray(y)
    except Exception as exc:  # noqa: BLE001 - ragged lists and the like
        raise InputError(target, "x or (x, y) as arrays", f"values numpy cannot make an array of ({_what(exc)})") from None
    return Dataset(x, y, target)


def _call(target: str):
    """What the user's data function returns (its import and call failures are their input's, exit 2)."""
    module_name, func_name = target.split(":")
    expected = "an importable 'package.module:function'"
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except Exception as exc:  # noqa: BLE001 - whatever the user's module raises on import
        raise InputError(target, expected, _what(exc)) from None
    if not callable(func):
        raise InputError(target, f"{expected} naming a function", f"a {type(func).__name__}")
    try:
        return func()
    except Exception as exc:  # noqa: BLE001 - the user's loader failed: their input, not edgepipe's bug
        raise InputError(target, "a function that returns x or (x, y)", f"it raised {_what(exc)}") from None
