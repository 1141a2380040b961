"""One way to run work: local worker processes, or a real Ray head on 127.0.0.1 (``ray_head``), same results.

The functions the workers run are defined here at module level: local workers
get this process's ``sys.path``, the Ray head's workers have tests/ on theirs.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from ci.helpers import EDGEPIPE, one_json_document, run_edgepipe
from edgepipe.errors import InputError
from edgepipe.scale import WorkerLost, executor_for


def square(x):
    """x*x and the worker's pid; 'bad' raises edgepipe's InputError, 'kill' kills its own process."""
    if x == "bad":
        raise InputError("data.npz", "an array named x", "none", "pass --x NAME")
    if x == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x, os.getpid()


def worker_env(_):
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS"), os.environ.get("EDGEPIPE_SCALE_PROBE"), os.getcwd()


@pytest.fixture(params=["local", "ray"])
def address(request):
    """None (local processes) or the session's Ray head."""
    return request.getfixturevalue("ray_head") if request.param == "ray" else None


def test_local_and_ray_map_give_the_same_results_in_order(ray_head):
    items = [3, 1, 4, 1, 5, 9, 2, 6]
    with executor_for(None, workers=2) as local:
        first = local.map(square, items)
        again = local.map(square, [7, 8])
        assert local.kind == "local" and local.describe()["workers"] == 2
    with executor_for(ray_head) as ray:
        remote = ray.map(square, items)
        assert ray.kind == "ray"
        assert ray.describe() == {"kind": "ray", "address": ray_head, "nodes": 1, "cpus": 2}
    assert [r for r, _ in first] == [r for r, _ in remote] == [x * x for x in items]
    assert {pid for _, pid in again} <= {pid for _, pid in first}, "the workers are reused across calls"
    assert os.getpid() not in {pid for _, pid in first + remote}


def test_calls_run_in_the_callers_folder_and_environment(address, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDGEPIPE_SCALE_PROBE", "forwarded")
    with executor_for(address) as ex:
        assert ex.map(worker_env, [0]) == [("0", "forwarded", str(tmp_path))]


def test_an_edgepipe_error_keeps_its_class_and_exit_code(address):
    with executor_for(address) as ex:
        with pytest.raises(InputError) as caught:
            ex.map(square, [2, "bad", 3])
        assert ex.map(square, [2, "bad"], return_exceptions=True)[1].fix == "pass --x NAME"
    assert caught.value.exit_code == 2 and caught.value.fix == "pass --x NAME"
    assert str(caught.value) == "data.npz: expected an array named x, found none (pass --x NAME)"


@pytest.mark.parametrize("address, how", [(None, "killed by SIGKILL"), ("ray", "WorkerCrashedError")],
                         indirect=["address"])
def test_a_killed_worker_is_worker_lost_naming_the_item(address, how):
    with executor_for(address) as ex:
        with pytest.raises(WorkerLost) as caught:
            ex.map(square, [2, "kill", 3])
        assert [r for r, _ in ex.map(square, [4, 5])] == [16, 25], "a fresh worker takes its place"
        done = []
        values = ex.map(square, [6, "kill"], return_exceptions=True, on_done=lambda i, v: done.append(i))
    assert caught.value.exit_code == 3 and "the worker running item 1 ('kill') was lost" in str(caught.value)
    assert how in str(caught.value) and "\n" not in str(caught.value)
    assert values[0][0] == 36 and isinstance(values[1], WorkerLost) and sorted(done) == [0, 1]


def _build(out, *extra):
    res = run_edgepipe("build", "--example", "digits", "-t", "rpi4", "-t", "esp32-s3", "--no-cache", "-o", out,
                       "--json", *extra)
    doc = one_json_document(res.stdout)
    sha = {t["target"]: hashlib.sha256((out / t["target"] / "model.tflite").read_bytes()).hexdigest()
           for t in doc["targets"]}
    return res, doc, sha


def test_a_two_target_build_on_ray_matches_the_local_one(ray_head, tmp_path):
    local, local_doc, local_sha = _build(tmp_path / "local")
    ray, ray_doc, ray_sha = _build(tmp_path / "ray", "--ray", ray_head)
    assert local.returncode == ray.returncode == 0, ray.stderr[-2000:]
    assert [(t["target"], t["status"]) for t in ray_doc["targets"]] == \
        [(t["target"], t["status"]) for t in local_doc["targets"]] == [("rpi4", "passed"), ("esp32-s3", "passed")]
    assert ray_sha == local_sha
    assert ray_doc["executor"] == {"kind": "ray", "address": ray_head, "nodes": 1, "cpus": 2}
    assert local_doc["executor"]["kind"] == "local"
    assert json.loads((tmp_path / "ray" / "esp32-s3" / "report.json").read_text())["status"] == "passed"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("given, problem", [
    ("127.0.0.1:{port}", "no Ray cluster answers there (connection refused)"),
    ("no-port-here", "expected HOST:PORT (or ray://HOST:PORT, or auto)"),
])
def test_an_address_with_no_cluster_is_exit_2_in_one_line(given, problem, tmp_path):
    given = given.format(port=_closed_port())
    res = run_edgepipe("build", "--example", "digits", "-t", "rpi4", "-t", "esp32-s3", "-o", tmp_path,
                       "--ray", given, "--json", timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip() == (f"error: --ray {given}: {problem} (start a cluster with `ray start --head "
                                  "--port=6379` and pass the HOST:PORT it prints)")
    assert one_json_document(res.stdout)["exit_code"] == 2


def test_without_the_ray_extra_the_error_names_it(tmp_path):
    """The environment without Ray: ``import ray`` fails as it does when the package is not installed."""
    code = ("import sys; sys.modules['ray'] = None\n"
            "from click.testing import CliRunner\nfrom edgepipe.cli import cli\n"
            f"res = CliRunner().invoke(cli, ['build', '--example', 'digits', '-t', 'rpi4', '-t', 'esp32-s3', "
            f"'-o', {str(tmp_path)!r}, '--ray', '127.0.0.1:1'])\n"
            "print(res.exit_code); print(res.output.strip())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["2", "error: --ray 127.0.0.1:1 needs the Python package 'ray', which is not "
                                     "installed (install it with: pip install 'edgepipe[ray]')"]


@pytest.mark.parametrize("args", [["--help"], ["build", "--help"], ["targets", "list"]])
def test_light_commands_do_not_import_ray(args):
    code = ("import sys\nfrom click.testing import CliRunner\nfrom edgepipe.cli import cli\n"
            f"assert CliRunner().invoke(cli, {args!r}).exit_code == 0\n"
            "print(sorted(m for m in ('ray', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def crashing_data():
    """A representative-data loader that dies as a native crash would (loaded in the build's own process)."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_build_whose_worker_dies_is_exit_3_in_one_line_naming_the_target(tmp_path):
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = run_edgepipe("build", "--example", "digits", "-t", "rpi4", "-t", "esp32-s3", "--no-cache", "-o", tmp_path,
                       "--rep-data", "ci.test_scale:crashing_data", "--json", env={"PYTHONPATH": tests})
    assert res.returncode == 3, res.stderr[-2000:]
    assert res.stderr.strip() == ("error: the worker running target rpi4 was lost (local process): "
                                  "killed by SIGKILL")
    assert one_json_document(res.stdout)["exit_code"] == 3



def sleeping_data():
    """A representative-data loader that records its process (a build worker) and then takes minutes."""
    import time

    with open(os.environ["EP_TEST_PID_FILE"], "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(300)


def test_sigterm_ends_a_build_in_one_line_with_143_and_takes_its_workers_along(tmp_path):
    """A CI job past its time limit sends SIGTERM: edgepipe unwinds as on Ctrl-C (no traceback, no death
    by signal, no output folder, no worker left building) and exits 128 + 15."""
    import time

    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pid_file, out = tmp_path / "worker.pid", tmp_path / "out"
    proc = subprocess.Popen([str(EDGEPIPE), "build", "--example", "digits", "-t", "rpi4", "-t", "esp32-s3",
                             "--no-cache", "-o", str(out), "--rep-data", "ci.test_scale:sleeping_data"],
                            env={**os.environ, "PYTHONPATH": tests, "EP_TEST_PID_FILE": str(pid_file)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-2000:]
    assert stderr.strip() == "error: terminated (SIGTERM)"
    assert not out.exists()
    deadline = time.monotonic() + 20
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker), "a worker outlived the terminated build"

def slow_square(args):
    """Writes its worker's pid to ``path``, then takes ``seconds``."""
    import time

    path, seconds = args
    with open(path, "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(seconds)
    return seconds * seconds


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is gone for our purpose
        return fh.read().split(") ")[-1][0] != "Z"


def test_a_worker_does_not_outlive_a_killed_caller(tmp_path):
    """A fit killed mid-search must not leave its workers building candidates nobody will read."""
    import time

    pid_file = tmp_path / "worker.pid"
    script = ("import sys; sys.path[:0] = %r\n"
              "from edgepipe.scale import executor_for\n"
              "from ci.test_scale import slow_square\n"
              "with executor_for(None, workers=1) as ex:\n"
              "    ex.map(slow_square, [(%r, 120)])\n") % (sys.path, str(pid_file))
    caller = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and caller.poll() is None, caller.stderr.read()
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    caller.kill()  # SIGKILL: the caller runs no cleanup at all
    caller.wait()
    deadline = time.monotonic() + 20
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker), "the worker outlived its caller"
    assert b"Traceback" not in caller.stderr.read()
