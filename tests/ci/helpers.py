"""Helpers for the CI tests (a module of its own: ``conftest`` names clash across test folders)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

EDGEPIPE = Path(sys.executable).parent / "edgepipe"
TESTS = Path(__file__).resolve().parent.parent


def _root_conftest():
    """tests/conftest.py by path: ``import conftest`` is whichever conftest pytest loaded last."""
    spec = importlib.util.spec_from_file_location("_edgepipe_tests_conftest", TESTS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_project = _root_conftest().write_project


def run_edgepipe(*args, env: dict | None = None, cwd: Path | None = None, timeout: float = 300,
                 executable: Path = EDGEPIPE) -> subprocess.CompletedProcess:
    """The real console script in a fresh process; stdout and stderr kept apart."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([str(executable), *map(str, args)], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=timeout)


def one_json_document(stdout: str) -> dict:
    """stdout must be exactly one JSON document (nothing before or after it)."""
    return json.loads(stdout)


def tiny_profile(folder: Path, parent: str = "rpi4", **sections) -> Path:
    """A profile extending ``parent``, e.g. ``memory={"flash": "1KiB"}``."""
    path = folder / f"{parent}-custom.yaml"
    path.write_text(yaml.safe_dump({"extends": parent, **sections}))
    return path
