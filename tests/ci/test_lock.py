"""Two builds into one output folder never interleave: the second waits, or stops with exit 2."""

import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from edgepipe.cli import cli
from edgepipe.pipeline.lock import LOCK_NAME, OutputLockedError, output_lock

HOLD = """
import sys, time
from edgepipe.pipeline.lock import output_lock
with output_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(folder, seconds):
    """Another process holding the folder's lock for ``seconds``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_build_stops_with_exit_2_naming_the_holder(project, tmp_path):
    out = tmp_path / "out"
    holder = _holder(out, 30)
    try:
        res = CliRunner().invoke(cli, ["build", "-t", "rpi4", "-c", str(project), "-o", str(out),
                                       "--lock-timeout", "0.3"])
    finally:
        holder.kill()
        holder.wait()
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0] == (
        f"error: {out}: another edgepipe build (pid {holder.pid}) is writing to this folder; waited 0.3 s "
        "(wait for it to finish, build into another --out, or raise --lock-timeout)")
    assert not (out / "model.tflite").exists()


def test_a_second_build_waits_for_the_first(project, tmp_path):
    out = tmp_path / "out"
    holder = _holder(out, 1.5)
    t0 = time.monotonic()
    res = CliRunner().invoke(cli, ["build", "-t", "rpi4", "-c", str(project), "-o", str(out), "-q"])
    holder.wait()
    assert res.exit_code == 0, res.output
    assert time.monotonic() - t0 >= 1.0 and (out / "model.tflite").exists()
    assert not (out / LOCK_NAME).exists(), "the lock file is removed with the lock"


def test_the_lock_is_released_when_the_holder_dies(tmp_path):
    holder = _holder(tmp_path / "out", 60)
    holder.kill()
    holder.wait()
    with output_lock(tmp_path / "out", timeout=1):
        pass


def test_in_one_process_a_held_lock_refuses_and_a_created_folder_is_removed_on_error(tmp_path):
    out = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError):
        with output_lock(out):
            with pytest.raises(OutputLockedError):
                with output_lock(out, timeout=0):
                    pass
            raise RuntimeError("the build failed before writing anything")
    assert not out.exists()
