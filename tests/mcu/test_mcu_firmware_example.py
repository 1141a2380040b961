"""examples/firmware: CMake reruns edgepipe when the model changes, and only then.

A stand-in for the ``edgepipe`` command records each call and emits sources with
the real ``emit_c_sources`` (the CLI's ``--emit c`` wiring is tested elsewhere);
the ``edgepipe_model`` library is built for real. The ``firmware`` executable needs
a TFLite Micro tree, which this machine does not have.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

CMAKE = shutil.which("cmake")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "firmware"

FAKE_EDGEPIPE = """#!{python}
import sys
import time
from pathlib import Path
from edgepipe.emit.c_sources import emit_c_sources
from edgepipe.tflite.model import read_tflite

args = sys.argv[1:]
Path({log!r}).open("a").write(" ".join(args) + "\\n")
if Path({fail!r}).exists():
    sys.exit(1)
model = read_tflite(args[args.index("--model") + 1])
emit_c_sources(model.data, args[args.index("--out") + 1], model.op_counts, 4096)
"""


@pytest.mark.skipif(CMAKE is None or shutil.which("c++") is None, reason="needs cmake and a C++ compiler")
def test_cmake_regenerates_sources_when_the_model_changes(mcu_models, tmp_path):
    log, fail = tmp_path / "calls.log", tmp_path / "fail"
    fake = tmp_path / "edgepipe"
    fake.write_text(FAKE_EDGEPIPE.format(python=sys.executable, log=str(log), fail=str(fail)))
    fake.chmod(0o755)
    model = tmp_path / "model.tflite"
    shutil.copy(mcu_models["cnn_int8"], model)
    build = tmp_path / "build"

    def cmake(*args):
        return subprocess.run([CMAKE, *args], capture_output=True, text=True, timeout=300)

    conf = cmake("-S", str(EXAMPLE), "-B", str(build), f"-DEDGEPIPE_EXECUTABLE={fake}",
                 f"-DEDGEPIPE_MODEL={model}", "-DEDGEPIPE_TARGET=stm32h7")
    assert conf.returncode == 0, conf.stderr

    def calls():
        return log.read_text().splitlines() if log.exists() else []

    assert cmake("--build", str(build)).returncode == 0
    assert len(calls()) == 1 and "--emit c --out" in calls()[0] and "--target stm32h7" in calls()[0]
    assert (build / "edgepipe" / "model_data.h").is_file()
    assert cmake("--build", str(build)).returncode == 0
    assert len(calls()) == 1  # up to date: edgepipe not run again

    past = time.time() - 60  # age the outputs instead of dating the model in the future
    for f in (build / "edgepipe").iterdir():
        os.utime(f, (past, past))
    os.utime(model)
    fail.touch()
    assert cmake("--build", str(build)).returncode != 0  # a failed edgepipe stops the build
    fail.unlink()
    assert cmake("--build", str(build)).returncode == 0  # ...and is retried next time
    assert len(calls()) == 3, calls()
