"""Measuring the TFLM arena and verifying 1,000 samples, per runtime: before and after "one judge".

"Before" is the package as it was at ``--before`` (a git revision, default the
commit before the backends landed), unpacked into a temporary folder and put
first on ``PYTHONPATH``; "after" is this checkout. Both run in fresh processes,
side by side, on the same models and data:

- the arena of four int8 models (a CNN, a streaming model with resource
  variables, a Conv1D with a 10,000-wide Dense, an FC autoencoder), with what
  each version *reports* — before, two of them were "cannot run";
- ``edgepipe verify`` of the digits example's model on 1,000 labelled samples
  for one target per runtime (rpi4: XNNPACK; esp32-s3: TFLM; ethos-u55:
  reference kernels + Vela), with the kernels each version measured accuracy on.

Prints min and median seconds and after/before ratios. The models are built by
tests/mcu/build_models.py and the digits example (TensorFlow, in child processes).

    .venv/bin/python benchmarks/judge_benchmark.py [--repeats 3] [--before 1980487]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
ARENA_MODELS = ("cnn_int8", "stream_int8", "conv1d_wide_int8", "autoencoder_int8")
TARGETS = {"litert": "rpi4", "tflm": "esp32-s3", "ethos-u": "ethos-u55"}
ARENA = """
import json, sys
from edgepipe.runtimes.tflm import measure_arena
try:
    a = measure_arena(open(sys.argv[1], "rb").read())
    print(json.dumps({"bytes": a.bytes, "method": a.method}))
except Exception as e:
    print(json.dumps({"error": str(e).splitlines()[0][:90]}))
"""


def timed(cmd: list[str], pythonpath: Path) -> tuple[float, str]:
    """Seconds and stdout of ``cmd`` with ``pythonpath`` first; run from / so the current folder
    (a checkout, maybe) cannot shadow the version under test."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "TF_CPP_MIN_LOG_LEVEL": "3"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd="/")
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stderr[-1500:]}")
    return time.perf_counter() - t0, proc.stdout


def versions(before: str, tmp: Path) -> dict[str, Path]:
    old = tmp / "before"
    old.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", before, "edgepipe", "targets", "examples"],
                             capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    return {"before": old, "after": REPO}


def prepare(tmp: Path) -> tuple[Path, Path]:
    """The arena models, and the digits model with 1,000 labelled eval samples."""
    subprocess.run([sys.executable, str(REPO / "tests/mcu/build_models.py"), str(tmp / "m")], check=True,
                   capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    subprocess.run([sys.executable, "-m", "edgepipe", "build", "--example", "digits", "-t", "rpi4", "-q",
                    "--no-cache", "-o", str(tmp / "digits")], check=True, capture_output=True)
    with np.load(REPO / "examples/digits/data.npz") as d:
        x, y = d["x_eval"] / 16.0, d["y_eval"]  # the example's preprocessing (scale 1/16)
    idx = np.arange(1000) % len(x)
    np.savez(tmp / "eval1000.npz", x=x[idx].astype(np.float32), y=y[idx])
    return tmp / "digits" / "model.tflite", tmp / "eval1000.npz"


def stats(samples: list[float]) -> tuple[float, float]:
    return min(samples), statistics.median(samples)


def compare(label: str, cmd: list, roots: dict[str, Path], repeats: int, show) -> None:
    got = {}
    for name, root in roots.items():
        runs = [timed(cmd, root) for _ in range(repeats)]
        got[name] = (stats([t for t, _ in runs]), show(runs[-1][1]))
    (b_min, b_med), b_what = got["before"]
    (a_min, a_med), a_what = got["after"]
    print(f"  {label:<26} before {b_min:6.2f}/{b_med:6.2f} s  after {a_min:6.2f}/{a_med:6.2f} s  "
          f"ratio {a_min / b_min:4.2f}/{a_med / b_med:4.2f}")
    print(f"  {'':<26} before: {b_what}\n  {'':<26} after:  {a_what}")


def verify_summary(stdout: str) -> str:
    doc = json.loads(stdout)
    acc = doc.get("accuracy", {})
    runtime = acc.get("runtime", {})
    kernels = runtime.get("name") or runtime.get("kernels")
    checks = {c["name"]: c["status"] for c in doc["checks"]}
    return f"top-1 {acc.get('quantized', {}).get('top1', float('nan')):.2f}% on {kernels}; {len(checks)} checks"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--before", default="1980487")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgepipe-judge-bench-") as d:
        tmp = Path(d)
        roots = versions(args.before, tmp)
        model, data = prepare(tmp)
        print(f"min/median of {args.repeats} fresh processes each; ratio = after / before")
        print("TFLM arena (measure_arena):")
        for name in ARENA_MODELS:
            compare(name, [sys.executable, "-c", ARENA, str(tmp / "m" / f"{name}.tflite")], roots, args.repeats,
                    lambda out: json.loads(out))
        print("verify, 1,000 samples (the digits model):")
        for runtime, target in TARGETS.items():
            cmd = [sys.executable, "-m", "edgepipe", "verify", str(model), "-t", target, "-d", str(data), "--json"]
            compare(f"{runtime} ({target})", cmd, roots, args.repeats, verify_summary)


if __name__ == "__main__":
    main()
