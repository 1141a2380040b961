"""Fixtures for ``edgepipe fit``: a board the bundled digits model does not fit, and one fit run shared.

The board is an nRF52840 with its RAM and latency budgets cut below what the
unpruned digits CNN needs (8,042 B of RAM, about 42 ms estimated), so a fit
must prune to meet them; ``max_drop: 2`` leaves room to do it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ci.conftest import ray_head  # noqa: E402,F401  the session's real Ray head on 127.0.0.1
from fit_helpers import SEARCH, board, fit  # noqa: E402


@pytest.fixture(scope="session")
def tight_targets(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fit-targets")
    board(folder)
    board(folder, "hopeless-m4", ram="1KiB")
    return folder


@pytest.fixture(scope="session")
def local_fit(tmp_path_factory, tight_targets):
    """(completed process, output folder) of the reference search on local processes."""
    out = tmp_path_factory.mktemp("fit-local") / "model"
    return fit(tight_targets, out, *SEARCH), out
