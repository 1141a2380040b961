"""A non-editable install ships the built-in profiles and the example.

The wheel is built from the checkout and installed into a fresh venv with
no dependencies; the dependencies come from this test environment through
PYTHONPATH (which, unlike site-packages, does not pick up the editable
install's .pth file), so the run proves the wheel's own contents.
"""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
                   check=True, capture_output=True)
    return next(out.glob("edgepipe-*.whl"))


@pytest.mark.slow
def test_wheel_contains_every_builtin_profile_and_the_example(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for yaml in (REPO / "targets").glob("*.yaml"):
        assert f"edgepipe/_builtin/targets/{yaml.name}" in names
    assert "edgepipe/_builtin/examples/digits/model.keras" in names


@pytest.mark.slow
def test_installed_wheel_lists_targets_from_any_directory(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True)
    env = dict(os.environ, PYTHONPATH=sysconfig.get_paths()["purelib"])
    res = subprocess.run([str(venv / "bin" / "edgepipe"), "targets", "list"], cwd=tmp_path,
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    for name in ("rpi4", "android-arm64", "coral-edgetpu", "ethos-u55", "esp32-s3", "stm32h7", "nrf52840"):
        assert name in res.stdout
    where = subprocess.run([str(py), "-c", "import edgepipe, sys; print(edgepipe.__file__)"], env=env,
                           capture_output=True, text=True, cwd=tmp_path)
    assert str(venv) in where.stdout, "the wheel, not the checkout, must be imported"
