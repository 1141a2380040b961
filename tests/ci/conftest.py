"""Fixtures for the CI and build-script integration tests.

Every test gets its own stage cache (``EDGEPIPE_CACHE_DIR``), so no test
replays another's builds unless it means to. Helpers are in ``helpers.py``;
subprocess tests run the real ``edgepipe`` console script of this environment.
The folder is a package so that this file is ``ci.conftest``, not a second
``conftest`` module shadowing tests/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch) -> Path:
    path = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("EDGEPIPE_CACHE_DIR", str(path))
    return path


@pytest.fixture
def tflite_path(tiny_build) -> Path:
    return tiny_build.artifacts["model.tflite"]


@pytest.fixture
def project(tmp_path, tiny_model_path, data_npz) -> Path:
    from ci.helpers import write_project

    return write_project(tmp_path, tiny_model_path, data_npz)


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory):
    """A real Ray head for this session, bound to 127.0.0.1 only; yields its address ``127.0.0.1:PORT``.

    Ray turns a loopback ``--node-ip-address`` into this machine's address unless
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is set, for the head and for every
    driver (this process, and the ``edgepipe`` processes the tests start, which
    inherit it). The head runs with ``--block`` in a session of its own: ending
    that one process (by its pid) ends every process it started; at teardown no
    process naming its private temp folder may survive. Its workers can import
    the tests' own module-level functions (``PYTHONPATH`` holds tests/).
    """
    import os
    import shutil
    import signal
    import socket
    import subprocess
    import sys
    import tempfile
    import time

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    loopback_env = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    temp = tempfile.mkdtemp(prefix="epray", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    port, client, agent, agent_grpc, env_agent, metrics = (free_port() for _ in range(6))
    ray = Path(sys.executable).parent / "ray"
    tests = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tests), os.environ.get("PYTHONPATH")])))
    log = tmp_path_factory.mktemp("ray-head") / "head.log"
    cmd = [str(ray), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
           "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}",
           f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}",
           f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={env_agent}",
           f"--metrics-export-port={metrics}", "--object-store-memory=200000000"]
    with open(log, "w") as out:
        head = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        if loopback_env is None:
            os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
        else:
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = loopback_env
        strays = _processes_of(head.pid, temp)
        for pid in strays:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)
        assert not strays, f"Ray processes outlived their head: {strays}"


def _processes_of(group: int, text: str) -> list[int]:
    """Pids in process group ``group`` or whose command line names ``text`` (a private folder): only ours."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                pgrp = int((proc / "stat").read_text().rpartition(")")[2].split()[2])
                if pgrp == group or text.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except (OSError, ValueError, IndexError):
                pass
    return found
