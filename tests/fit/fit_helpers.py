"""Helpers of the ``edgepipe fit`` tests (a module of its own: ``from conftest import`` resolves to
whichever conftest pytest loaded last)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ci.helpers import run_edgepipe  # noqa: E402

#: The arguments of the reference search: 8 candidates in batches of 4, seed 0.
SEARCH = ("--trials", "8", "--batch", "4", "--seed", "0", "-j", "2")


def board(folder: Path, name: str = "tight-m4", ram: str = "7.5KiB", latency: str = "35ms") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "extends": "nrf52840", "memory": {"ram": ram},
                                    "latency": latency, "accuracy": {"max_drop": 2}}))
    return path


def fit(targets: Path, out: Path, *extra: str, target: str = "tight-m4"):
    return run_edgepipe("fit", "--example", "digits", "-t", target, "--targets-dir", targets, "-o", out,
                        *extra, timeout=900)
