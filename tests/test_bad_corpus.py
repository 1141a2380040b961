"""A corpus of bad configs and bad data, each through the real CLI: exit 2, one line, the culprit named.

Every case writes its files into a fresh folder and returns the command line;
the answer must be exit code 2 and exactly one output line, ``error: ...``,
that names the file or key at fault. No case may end in a traceback (exit 3)
or be accepted. A few good inputs at the end hold the old behaviour.

Profiles go through ``targets show PATH.yaml`` (and ``--targets-dir``,
``verify -t PATH.yaml``), project configs through ``build -c`` (they fail
before any TensorFlow work) and ``verify -c``, data through ``verify -d``
against the tiny digits model of ``tiny_build`` (input (8, 8, 1), 10 classes).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from click.testing import CliRunner

from edgepipe.cli import cli


@dataclass(frozen=True)
class Env:
    """What a case may use: a fresh folder, the tiny model, real eval data, two odd models."""

    dir: Path
    model: str
    x: np.ndarray
    y: np.ndarray
    seg_model: str
    huge_model: str

    def npz(self, name: str = "data.npz", **arrays) -> str:
        path = self.dir / name
        np.savez(path, **arrays)
        return str(path)

    def write(self, name: str, text: str | bytes) -> str:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return str(path)

    def verify(self, *args: str, data: str | None = None) -> list[str]:
        return ["verify", self.model, "-t", "rpi4", *(["-d", data] if data else []), *args]


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Env], list[str]]  # writes the files, returns the command line
    named: tuple[str, ...]  # must all appear in the error line


CASES: list[Case] = []


def case(id: str, *named: str):
    def add(make):
        CASES.append(Case(id, make, named))
        return make
    return add


# ---------------------------------------------------------------- target profiles: YAML

def _show(env: Env, text: str | bytes, name: str = "board.yaml") -> list[str]:
    return ["targets", "show", env.write(name, text)]


BOARD = "name: board\nmemory:\n  flash: 1MiB\n"

case("profile-latin1", "board.yaml, line 2", "UTF-8", "0xe9")(
    lambda e: _show(e, b"name: board\ndescription: caf\xe9 board\n"))
case("profile-utf16", "board.yaml", "UTF-8")(lambda e: _show(e, BOARD.encode("utf-16")))
case("profile-nul-byte", "board.yaml, line 2", "#x0000")(lambda e: _show(e, "name: b\ndescription: a\x00b\n"))
case("profile-nested-1000-flow", "board.yaml, line 2", "levels of nesting")(
    lambda e: _show(e, "name: b\ndevice: " + "[" * 1000 + "]" * 1000 + "\n"))
case("profile-nested-1000-block", "board.yaml", "levels of nesting")(
    lambda e: _show(e, "name: b\n" + "".join("  " * i + f"k{i}:\n" for i in range(1000))))
case("profile-duplicate-top-key", "board.yaml, line 3", "'runtime' again", "first on line 2")(
    lambda e: _show(e, "name: b\nruntime: tflm\nruntime: litert\n"))
case("profile-duplicate-nested-key", "board.yaml, line 4", "'ram' again", "first on line 3")(
    lambda e: _show(e, "name: b\nmemory:\n  ram: 512KiB\n  ram: 2MiB\n"))
case("profile-alias-bomb", "board.yaml", "aliases expanded")(lambda e: _show(e, "name: b\n" + "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10) if i else 'x'}]\n" for i in range(7))))
case("profile-malformed", "board.yaml, line 2", "malformed YAML")(lambda e: _show(e, "name: b\n memory: [\n"))
case("profile-top-level-list", "board.yaml", "mapping")(lambda e: _show(e, "- name: b\n"))
case("profile-empty", "board.yaml", "empty file")(lambda e: _show(e, ""))
case("profile-comments-only", "board.yaml", "empty file")(lambda e: _show(e, "# a board, some day\n"))
case("profile-empty-mapping", "board.yaml", "empty file")(lambda e: _show(e, "{}\n"))

# ---------------------------------------------------------------- target profiles: values

for key, value, why in [
    ("memory.ram", "1e400", "finite"), ("memory.ram", "1.0e+400", "finite"), ("memory.ram", ".inf", "finite"),
    ("memory.ram", "-5", "0 or more"), ("memory.ram", ".nan", "finite"), ("memory.ram", "-5KiB", "size"),
    ("memory.flash", "1e400KiB", "finite"), ("latency", "1e400ms", "finite"), ("latency", ".nan", "time"),
    ("device.clock", "1e999GHz", "finite"), ("device.cores", ".nan", "finite"), ("threads", ".inf", "finite"),
    ("accuracy.max_drop", ".nan", "finite"), ("accuracy.max_drop", ".inf", "finite"),
    ("accuracy.max_lsb_diff", ".nan", "finite"), ("tflm.arena_margin_ratio", ".nan", "finite"),
    ("tflm.arena_margin", "-1", "0 or more"), ("quantization.calibration_samples", ".nan", "finite"),
    ("cost_model.int8_macs_per_second", ".inf", "finite"), ("cost_model.memory_bandwidth", "1e400GB/s", "finite"),
    ("cost_model.per_op_overhead", "1e400us", "finite"),
]:
    def _make(e, key=key, value=value):
        *parents, last = key.split(".")
        text = "name: b\n" + "".join("  " * i + f"{p}:\n" for i, p in enumerate(parents))
        return _show(e, text + "  " * len(parents) + f"{last}: {value}\n")
    case(f"profile-{key}={value}", "board.yaml, line", f"({key})", why)(_make)



@case("profile-empty-parent", "_base.yaml", "empty file")
def _empty_parent(e: Env) -> list[str]:
    e.write("t/child.yaml", "extends: _base\n")
    return ["targets", "show", "child", "--targets-dir", str(Path(e.write("t/_base.yaml", "")).parent)]


case("profile-in-targets-dir-listed", "bad.yaml, line 3", "'ram' again")(lambda e: [
    "targets", "list", "--targets-dir", str(Path(e.write("t/bad.yaml", "memory:\n  ram: 1\n  ram: 2\n")).parent)])
case("profile-via-verify", "board.yaml, line 3", "(memory.ram)", "finite")(
    lambda e: e.verify("-t", e.write("board.yaml", "name: b\nmemory:\n  ram: .nan\n")))

# ---------------------------------------------------------------- project config (build -c fails before TensorFlow)

def _build(env: Env, text: str | bytes) -> list[str]:
    return ["build", "-t", "rpi4", "-c", env.write("edgepipe.yaml", text), "-o", str(env.dir / "out")]


case("project-latin1", "edgepipe.yaml, line 1", "UTF-8")(lambda e: _build(e, b"model: m\xf6del.keras\n"))
case("project-duplicate-key", "edgepipe.yaml, line 2", "'model' again", "first on line 1")(
    lambda e: _build(e, "model: a.keras\nmodel: b.keras\n"))
case("project-nested-1000", "edgepipe.yaml", "levels of nesting")(
    lambda e: _build(e, "data:\n  eval: " + "{a: " * 1000 + "1" + "}" * 1000 + "\n"))

for key, value, why in [
    ("preprocess.std", "0", "above 0"), ("preprocess.std", "[1, 0, 1]", "above 0"), ("preprocess.std", "-1", "above 0"),
    ("preprocess.std", ".nan", "finite"), ("preprocess.scale", ".nan", "finite"), ("preprocess.scale", ".inf", "finite"),
    ("preprocess.scale", "0", "non-zero"), ("preprocess.mean", ".nan", "finite"), ("preprocess.mean", "[]", "empty"),
    ("preprocess.mean", "[.inf]", "finite"), ("quantization.calibration_samples", ".nan", "finite"),
    ("data.eval", "{path: [a]}", "'path'"), ("data.eval", "5", "found int"), ("data.eval", "{x: x_eval}", "neither"),
    ("data.eval", "{path: d.npz, x: 3}", "'x'"), ("data.eval", "{path: d.npz, y_path: [b]}", "'y_path'"),
    ("data.eval", "{callable: not a callable}", "module:function"), ("data.eval", "''", "empty string"),
    ("data.representative", "{path: d.npz, callable: 'm:f'}", "both"), ("data.train", "[a.npz]", "found list"),
]:
    def _make(e, key=key, value=value):
        parent, last = key.split(".")
        return _build(e, f"model: m.keras\n{parent}:\n  {last}: {value}\n")
    case(f"project-{key}={value}", "edgepipe.yaml, line 3", f"({key}", why)(_make)

# ---------------------------------------------------------------- command line and preprocessing (verify)

case("cli-scale-inf", "(command line) (preprocess.scale)", "finite")(lambda e: e.verify("--scale", "inf"))
case("cli-scale-nan", "(command line) (preprocess.scale)", "finite")(lambda e: e.verify("--scale", "nan"))
case("cli-std-0", "(command line) (preprocess.std)", "above 0")(lambda e: e.verify("--std", "0"))
case("cli-mean-nan-over-config", "(command line) (preprocess.mean)", "finite")(
    lambda e: e.verify("--mean", "nan", "-c", e.write("edgepipe.yaml", "preprocess:\n  mean: 0.5\n")))
case("cli-min-accuracy-nan", "--min-accuracy", "0 to 100", "nan")(lambda e: e.verify("--min-accuracy", "nan"))
case("cli-min-accuracy-150", "--min-accuracy", "0 to 100")(lambda e: e.verify("--min-accuracy", "150"))
case("cli-baseline-accuracy-inf", "--baseline-accuracy", "inf")(lambda e: e.verify("--baseline-accuracy", "inf"))
case("cli-baseline-rmse-inf", "--baseline-accuracy", "an RMSE", "inf")(
    lambda e: e.verify("--task", "regression", "--baseline-accuracy", "inf"))
case("cli-baseline-report-nan", "report.json", "found nan")(lambda e: e.verify(
    "--baseline", e.write("report.json", '{"accuracy": {"float": {"top1": NaN}}}')))
case("scale-overflows-float32", "after preprocessing", "NaN or Inf", "--scale")(
    lambda e: e.verify("--scale", "1e39", data=e.npz(x=e.x, y=e.y)))
case("tiny-std-overflows", "after preprocessing", "NaN or Inf")(
    lambda e: e.verify("--std", "1e-44", data=e.npz(x=e.x + 1, y=e.y)))
case("mean-per-channel-wrong-length", "edgepipe.yaml (preprocess.mean)", "one per channel (1", "3 values")(
    lambda e: e.verify("-c", e.write("edgepipe.yaml", "preprocess:\n  mean: [0.1, 0.2, 0.3]\n"),
                       data=e.npz(x=e.x, y=e.y)))
case("std-per-channel-wrong-length", "(preprocess.std)", "one per channel", "2 values")(
    lambda e: e.verify("-c", e.write("edgepipe.yaml", "preprocess:\n  std: [1, 2]\n"), data=e.npz(x=e.x, y=e.y)))
case("project-data-path-list-on-verify", "edgepipe.yaml, line 3", "(data.eval)", "'path'")(
    lambda e: e.verify("-c", e.write("edgepipe.yaml", "data:\n  eval:\n    path: [a]\n")))

# ---------------------------------------------------------------- data files (verify -d)

def _npz_member(env: Env, header_shape: tuple, data: np.ndarray) -> str:
    """An archive whose x.npy header claims ``header_shape`` but holds ``data``'s bytes."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": np.lib.format.dtype_to_descr(data.dtype),
                                                "fortran_order": False, "shape": header_shape})
    ys = io.BytesIO()
    np.save(ys, env.y)
    path = env.dir / "lying.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", head.getvalue() + data.tobytes())
        z.writestr("y.npy", ys.getvalue())
    return str(path)


def _images(env: Env, files: dict[str, bytes]) -> str:
    for name, content in files.items():
        env.write(f"images/{name}", content)
    return str(env.dir / "images")


def _png(env: Env) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((env.x[0, :, :, 0] * 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


case("npz-pickled-x", "data.npz[x]", "Python objects")(
    lambda e: e.verify(data=e.npz(x=np.array([{"a": 1}] * 5, dtype=object), y=e.y[:5])))
case("npz-pickled-y", "data.npz[y]", "Python objects")(
    lambda e: e.verify(data=e.npz(x=e.x, y=np.array(list(e.y), dtype=object))))
case("npz-string-labels", "eval labels", "data.npz", "numeric labels", "dtype <U")(
    lambda e: e.verify(data=e.npz(x=e.x, y=np.array([f"digit{v}" for v in e.y]))))
case("npz-bytes-labels", "eval labels", "data.npz", "dtype |S")(
    lambda e: e.verify(data=e.npz(x=e.x, y=np.array([str(v).encode() for v in e.y]))))
case("npz-complex-labels", "eval labels", "dtype complex")(
    lambda e: e.verify(data=e.npz(x=e.x, y=e.y.astype(np.complex64))))
case("npz-string-labels-regression", "eval labels", "dtype <U")(
    lambda e: e.verify("--task", "regression", data=e.npz(x=e.x, y=np.array([str(v) for v in e.y]))))
case("npz-labels-a-scalar", "labels", "a single value")(lambda e: e.verify(data=e.npz(x=e.x, y=np.int64(3))))
case("npz-header-claims-petabytes", "lying.npz[x]", "as its header says", "found 25600 bytes")(
    lambda e: e.verify(data=_npz_member(e, (10**13, 8, 8, 1), e.x[:100])))
case("npz-header-claims-more", "lying.npz[x]", "as its header says")(
    lambda e: e.verify(data=_npz_member(e, (len(e.x) * 2, 8, 8, 1), e.x)))
case("npz-header-claims-less", "lying.npz[x]", "as its header says")(
    lambda e: e.verify(data=_npz_member(e, (len(e.x) // 2, 8, 8, 1), e.x)))
case("npz-member-not-npy", "[x]", "readable .npy")(lambda e: e.verify(data=_npz_raw(e)))
case("npz-not-a-zip", "data.npz", "readable .npz")(lambda e: e.verify(data=e.write("data.npz", b"PK\x03\x04junk")))
case("npy-pickled", "x.npy", "readable .npy")(
    lambda e: e.verify(data=_npy(e, np.array([{"a": 1}] * 5, dtype=object))))
case("npy-truncated", "x.npy", "readable .npy")(
    lambda e: e.verify(data=e.write("x.npy", _npy_bytes(e.x)[:-100])))
case("npy-scalar", "x.npy", "a single value")(lambda e: e.verify(data=_npy(e, np.float32(1.0))))
case("images-not-images", "1.png", "an image file", "UnidentifiedImageError")(
    lambda e: e.verify(data=_images(e, {"0/1.png": b"not a png", "1/2.png": b"nor this"})))
case("images-truncated-png", "2.png", "an image file")(
    lambda e: e.verify(data=_images(e, {"0/1.png": _png(e), "1/2.png": _png(e)[:40]})))
case("images-text-files", "images", "expected images", "found none")(
    lambda e: e.verify(data=_images(e, {"0/a.txt": b"x", "1/b.txt": b"y"})))
case("callable-raises", "json:loads", "raised TypeError")(lambda e: e.verify(data="json:loads"))
case("callable-import-raises", "brokenmod:load", "RuntimeError", "no import today")(
    lambda e: e.verify(data="brokenmod:load"))
case("callable-ragged", "badmod:ragged", "numpy cannot make an array")(lambda e: e.verify(data="badmod:ragged"))
case("callable-not-callable", "math:pi", "naming a function")(lambda e: e.verify(data="math:pi"))
case("callable-returns-a-string", "os:getcwd", "a single value")(lambda e: e.verify(data="os:getcwd"))
case("classification-on-a-feature-map", "the model's output", "(N, 2)", "(100, 8, 8, 2)", "--task regression")(
    lambda e: ["verify", e.seg_model, "-t", "rpi4", "-d", e.npz(x=e.x, y=e.y % 2)])
case("class-count-2**31-1", "the model's output", "at most 1048576 classes", "2147483647")(
    lambda e: ["verify", e.huge_model, "-t", "rpi4", "-d", e.npz(x=e.x, y=e.y)])


def _npz_raw(env: Env) -> str:
    path = env.dir / "raw.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", b"these bytes are no array")
    return str(path)


def _npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


def _npy(env: Env, a) -> str:
    return env.write("x.npy", _npy_bytes(a))


# ---------------------------------------------------------------- fixtures and the test


@pytest.fixture(scope="module")
def odd_models(tmp_path_factory, tiny_build):
    """A float model whose output is a feature map (1, 8, 8, 2), and the tiny model claiming 2**31-1 classes."""
    from edgepipe.keras_io import import_tensorflow

    tf = import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1), batch_size=1)
    seg = keras.Model(inp, keras.layers.Conv2D(2, 3, padding="same")(inp))
    folder = tmp_path_factory.mktemp("odd-models")
    (folder / "seg.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(seg).convert())
    tiny = Path(tiny_build.artifacts["model.tflite"]).read_bytes()
    ten, huge = (np.array([2, 1, n], np.int32).tobytes() for n in (10, 2**31 - 1))  # the output's shape vector
    assert tiny.count(ten) == 2  # the final FC's output and the softmax's: both claim the huge class count
    (folder / "huge.tflite").write_bytes(tiny.replace(ten, huge))
    return str(folder / "seg.tflite"), str(folder / "huge.tflite")


MODULES = {
    "badmod.py": "import numpy as np\n\n"
                 "def ragged():\n    return [[1, 2], [3]]\n\n"
                 "def good():\n    return np.zeros((4, 8, 8, 1), np.float32), np.arange(4)\n",
    "brokenmod.py": "raise RuntimeError('no import today')\n",
}


@pytest.fixture
def env(tmp_path, tiny_build, digits, odd_models, monkeypatch):
    for name, text in MODULES.items():
        (tmp_path / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))  # the user's loader modules, importable as in a project
    _, _, x, y = digits
    return Env(tmp_path, str(tiny_build.artifacts["model.tflite"]), x[:100], y[:100], *odd_models)


def _run(args: list[str]):
    return CliRunner().invoke(cli, args)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_exit_2_with_one_line_naming_it(c: Case, env):
    res = _run(c.make(env))
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    missing = [f for f in c.named if f not in lines[0]]
    assert not missing, (missing, lines[0])


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


# ---------------------------------------------------------------- good inputs keep working


def test_a_good_profile_with_anchors_still_loads(tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text("name: board\nruntime: tflm\ndescription: &cpu Cortex-M7\ndevice: {cpu: *cpu, clock: 480MHz}\n"
                    "memory:\n  flash: 1MiB\n  ram: 256KiB\nlatency: 1e2ms\n"
                    "cost_model:\n  memory_bandwidth: 1.5GB/s\n")
    res = _run(["targets", "show", str(path), "--json"])
    assert res.exit_code == 0, res.output
    profile = json.loads(res.output)["profile"]
    assert profile["memory"] == {"flash": 1048576, "ram": 262144} and profile["device"]["cpu"] == "Cortex-M7"
    assert profile["latency"] == pytest.approx(0.1) and profile["cost_model"]["memory_bandwidth"] == 1.5e9


def test_a_merge_key_is_not_a_duplicate(tmp_path):
    from edgepipe.config.project import load_project

    path = tmp_path / "edgepipe.yaml"
    path.write_text("data:\n  eval: &e {path: d.npz, x: x_eval, y: y_eval}\n  train: {<<: *e, x: x_train}\n"
                    "preprocess: {scale: 0.0625, mean: [0.5], std: 2}\n")
    project = load_project(path)
    assert project.source_spec("train").x_key == "x_train" and project.source_spec("train").y_key == "y_eval"
    assert project.preprocess.mean == [0.5] and project.preprocess.std == 2


def test_built_in_profiles_all_still_load():
    res = _run(["targets", "list", "--json"])
    assert res.exit_code == 0, res.output
    assert {"rpi4", "esp32-s3", "stm32h7"} <= {r["name"] for r in json.loads(res.output)}


def test_good_data_with_per_channel_preprocess_still_verifies(env, tmp_path):
    cfg = env.write("edgepipe.yaml", "preprocess:\n  scale: 2.0\n  mean: [1.0]\n  std: [1.0]\n")
    res = _run(env.verify("-c", cfg, "--min-accuracy", "50", "--json", data=env.npz(x=env.x, y=env.y)))
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["accuracy"]["samples"] == 100 and doc["accuracy"]["quantized"]["top1"] >= 50
    assert len(doc["accuracy"]["confusion_matrix"]) == 10


def test_good_image_folder_and_callable_still_load(env):
    from edgepipe.data.sources import SourceSpec, load_dataset

    folder = _images(env, {"0/a.png": _png(env), "1/b.png": _png(env)})
    ds = load_dataset(SourceSpec.parse(folder, env.dir, "test"), need_labels=True)
    assert ds.x.shape == (2, 8, 8, 1) and ds.y.tolist() == [0, 1]
    ds = load_dataset(SourceSpec.parse("badmod:good", env.dir, "test"), need_labels=True)
    assert ds.x.shape == (4, 8, 8, 1) and ds.y.tolist() == [0, 1, 2, 3]


def test_a_good_npz_loads_as_before(env):
    from edgepipe.data.sources import SourceSpec, load_dataset

    path = env.npz(x=env.x, y=env.y)
    ds = load_dataset(SourceSpec.parse({"path": path, "y": None}, env.dir, "test"))
    assert ds.y is None and np.array_equal(ds.x, env.x)
    ds = load_dataset(SourceSpec.parse(path, env.dir, "test"), need_labels=True)
    assert np.array_equal(ds.y, env.y)

