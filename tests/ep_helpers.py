"""Helpers shared by test modules (imported by name: ``from ep_helpers import ...``).

Not in conftest.py: ``from conftest import`` resolves to whichever conftest
pytest loaded last, and tests/mcu and tests/prune have their own.
"""

from __future__ import annotations

from pathlib import Path

import yaml


def write_project(folder: Path, model: Path, data: Path, **extra) -> Path:
    """An edgepipe.yaml pointing at ``model`` and ``data``."""
    cfg = {
        "model": str(model),
        "data": {
            "representative": {"path": str(data), "x": "x"},
            "eval": {"path": str(data), "x": "x_eval", "y": "y_eval"},
        },
    }
    cfg.update(extra)
    path = folder / "edgepipe.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
