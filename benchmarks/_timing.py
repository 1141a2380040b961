"""Wall-clock timing of commands in fresh processes, shared by the CI benchmarks."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

EDGEPIPE = str(Path(sys.executable).parent / "edgepipe")


def run_time(cmd: list[str], env: dict | None = None, expect: tuple[int, ...] = (0,)) -> float:
    """Seconds one run of ``cmd`` takes; fails loudly on an unexpected exit code."""
    return timed_run(cmd, env, expect)[0]


def timed_run(cmd: list[str], env: dict | None = None, expect: tuple[int, ...] = (0,)) -> tuple[float, str]:
    """(seconds, stdout) of one run of ``cmd``."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - t0
    if proc.returncode not in expect:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def median_time(cmd: list[str], repeats: int, env: dict | None = None, warmup: int = 1) -> float:
    """Median of ``repeats`` runs after ``warmup`` runs (so the OS file cache is warm for every contender)."""
    for _ in range(warmup):
        run_time(cmd, env)
    return statistics.median(run_time(cmd, env) for _ in range(repeats))


def row(name: str, seconds: float, ratio: str = "") -> str:
    return f"  {name:<46} {seconds:8.3f} s  {ratio}"
