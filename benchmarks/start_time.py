"""Start time of edgepipe's light commands vs `python -c "import tensorflow"`.

`edgepipe --help` and `edgepipe inspect model.tflite --target rpi4` must never
import TensorFlow; this measures what that buys, each in a fresh process,
median of N runs after a warm-up run. Goal: each at least 8x faster than
importing TensorFlow.

    .venv/bin/python benchmarks/start_time.py [--model M.tflite] [--repeats 5]

Without ``--model`` it builds the bundled digits example once (into a temp
folder; the stage cache makes later runs quick) and inspects that.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import EDGEPIPE, median_time, row, run_time  # noqa: E402

GOAL = 8.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a .tflite to inspect (default: build the digits example)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            run_time([EDGEPIPE, "build", "--example", "digits", "-t", "rpi4", "-o", tmp, "-q"])
            model = str(Path(tmp) / "model.tflite")
        tf = median_time([sys.executable, "-c", "import tensorflow"], args.repeats,
                         env={"TF_CPP_MIN_LOG_LEVEL": "3"})
        cases = {
            "edgepipe --help": [EDGEPIPE, "--help"],
            "edgepipe inspect model.tflite --target rpi4": [EDGEPIPE, "inspect", model, "--target", "rpi4"],
            "edgepipe targets list": [EDGEPIPE, "targets", "list"],
        }
        print(f"start time, median of {args.repeats} fresh processes (goal: >= {GOAL:g}x faster than TensorFlow)")
        print(row('python -c "import tensorflow"', tf))
        worst = float("inf")
        for name, cmd in cases.items():
            t = median_time(cmd, args.repeats)
            worst = min(worst, tf / t)
            print(row(name, t, f"{tf / t:5.1f}x faster"))
    print(f"slowest light command: {worst:.1f}x faster than importing TensorFlow "
          f"({'meets' if worst >= GOAL else 'MISSES'} the {GOAL:g}x goal)")


if __name__ == "__main__":
    main()
