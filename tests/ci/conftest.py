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
