"""`pip install edgepipe` without TensorFlow: inspect and verify work, build says what to install.

The wheel is built from the checkout and installed (no dependencies) into a
fresh venv. Its light dependencies — the closure of edgepipe's core
requirements, read from package metadata — are symlinked from this
environment into one folder on the venv's path; TensorFlow, Keras, TFLM and
Vela are not there.
"""

import json
import os
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

from ci.helpers import one_json_document, run_edgepipe

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("tensorflow", "keras", "tflite_micro", "ethosu")


def light_requirements() -> set[str]:
    """Distributions needed by edgepipe's core requirements (no extras), recursively."""
    from packaging.requirements import Requirement

    todo, seen = [r for r in metadata.requires("edgepipe") or []], set()
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = req.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        todo += metadata.requires(name) or []
    return seen


def link_distributions(names: set[str], into: Path) -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    into.mkdir()
    for name in names:
        for top in {Path(f).parts[0] for f in metadata.distribution(name).files or ()}:
            if top != ".." and (site / top).exists() and not (into / top).exists():
                (into / top).symlink_to(site / top)


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("light")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "dist"), str(REPO)],
                   check=True, capture_output=True)
    wheel = next((root / "dist").glob("edgepipe-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True)
    deps = light_requirements()
    assert not deps & {"tensorflow", "keras", "tflite-micro", "ethos-u-vela"}, deps
    link_distributions(deps, root / "deps")
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "light_deps.pth").write_text(str(root / "deps") + "\n")
    return venv


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.mark.slow
def test_light_install_has_no_tensorflow(light_venv, tmp_path):
    probe = "import importlib.util as u, edgepipe; print(edgepipe.__file__, [m for m in %r if u.find_spec(m)])" % (
        HEAVY,)
    out = subprocess.run([str(light_venv / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                         env=_env(), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    where, found = out.stdout.rsplit(" [", 1)
    assert str(light_venv) in where and found.strip() == "]", out.stdout


@pytest.mark.slow
def test_inspect_and_verify_work_without_tensorflow(light_venv, tflite_path, data_npz, tmp_path):
    exe = light_venv / "bin" / "edgepipe"
    inspect = run_edgepipe("inspect", tflite_path, "-t", "rpi4", "--json", executable=exe, env=_env(), cwd=tmp_path)
    assert inspect.returncode == 0, inspect.stderr
    assert one_json_document(inspect.stdout)["ops"]["CONV_2D"] == 1
    verify = run_edgepipe("verify", tflite_path, "-t", "rpi4", "-d", data_npz, "--x", "x_eval", "--y", "y_eval",
                          "--min-accuracy", "80", "--json", "--report", tmp_path / "v.json", executable=exe,
                          env=_env(), cwd=tmp_path)
    assert verify.returncode == 0, verify.stderr
    doc = one_json_document(verify.stdout)
    assert doc["status"] == "passed" and doc["accuracy"]["quantized"]["top1"] > 80
    assert doc["tools"]["tensorflow"] is None and doc["tools"]["ai-edge-litert"]
    assert json.loads((tmp_path / "v.json").read_text())["checks"] == doc["checks"]


@pytest.mark.slow
def test_build_without_tensorflow_says_what_to_install(light_venv, tflite_path, tmp_path):
    res = run_edgepipe("build", "--example", "digits", "-t", "rpi4", "-o", tmp_path / "out",
                       executable=light_venv / "bin" / "edgepipe", env=_env(), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [
        "error: building from a Keras model needs the Python package 'tensorflow', which is not installed "
        "(install it with: pip install 'edgepipe[build]')"]
    assert res.stdout == "" and not (tmp_path / "out").exists()
    mcu = run_edgepipe("verify", tflite_path, "-t", "esp32-s3", executable=light_venv / "bin" / "edgepipe",
                       env=_env(), cwd=tmp_path)
    assert mcu.returncode == 2 and mcu.stderr.strip().splitlines() == [
        "error: verifying for a tflm target (esp32-s3) needs the Python package 'tflite-micro', which is not "
        "installed (install it with: pip install 'edgepipe[mcu]')"]
