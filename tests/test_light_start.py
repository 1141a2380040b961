"""Fast start: --help, target listing and inspect never import TensorFlow or Keras.

Each case runs in a fresh interpreter, the way a user's shell does.
"""

import subprocess
import sys

import pytest

PROBE = """
import sys
from click.testing import CliRunner
from edgepipe.cli import cli
res = CliRunner().invoke(cli, {args!r})
assert res.exit_code in (0, 1), res.output
heavy = sorted(m for m in ("tensorflow", "keras", "tf_keras") if m in sys.modules)
print("HEAVY:" + ",".join(heavy))
"""


def _heavy_modules(args):
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, check=True)
    line = next(l for l in out.stdout.splitlines() if l.startswith("HEAVY:"))
    return line.removeprefix("HEAVY:")


@pytest.mark.parametrize("args", [["--help"], ["targets", "list"], ["targets", "show", "esp32-s3"],
                                  ["build", "--help"], ["fit", "--help"]])
def test_commands_do_not_import_tensorflow(args):
    assert _heavy_modules(args) == ""


def test_inspect_does_not_import_tensorflow(tiny_build):
    path = str(tiny_build.artifacts["model.tflite"])
    assert _heavy_modules(["inspect", path, "--target", "esp32-s3"]) == ""


def test_every_module_imports_alone():
    """No circular imports; light modules stay light."""
    import pkgutil

    import edgepipe

    names = [m.name for m in pkgutil.walk_packages(edgepipe.__path__, "edgepipe.") if "__main__" not in m.name]
    code = "import importlib, sys\nfor n in {!r}:\n    importlib.import_module(n)\n".format(names)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "edgepipe", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "edgepipe, version" in out.stdout
