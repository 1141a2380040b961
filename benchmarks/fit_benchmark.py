"""``edgepipe fit`` against the best uniform prune ratio a grid finds, on models that do not fit a board.

For each model (architectures edgepipe did not design, rebuilt in
``prune_models.py`` and trained briefly on scikit-learn's digits: the MLPerf
Tiny keyword-spotting DS-CNN and image-classification ResNet-8, Arriaga et
al.'s mini-Xception, a Permute detector with a class and a box head), the
benchmark

1. builds the model as it is for a Cortex-M4 board (the nRF52840 profile)
   and derives a board whose latency budget is ``--squeeze`` and RAM budget
   ``--ram-squeeze`` of what the model needs (so the unpruned model misses
   them), with an accuracy tolerance of 3 points (``MAX_DROP``);
2. **grid**: builds uniform ``prune.ratio`` 0.1 … 0.8 (least-squares
   reconstruction on, as fit may choose; with ``--grid-first`` each ratio
   also with the first convolution pruned, as fit's ``first`` knob may) and
   keeps the candidate that passes every check with the least accuracy
   damage, else the nearest miss; with
   ``--finetune-epochs``, its ``--finetune-top`` ratios that meet every budget
   with the least damage are built again with that fine-tuning;
3. **fit**: runs ``edgepipe fit`` with ``--trials`` candidates and the same
   fine-tuning of its best few;

then prints, side by side, for grid and fit: whether a candidate fits, its
settings, RAM and latency against the budgets, the accuracy damage (share
of the tolerance) and agreement with the float model (top-1 agreement for
classifiers, from the report's accuracy checks), and the wall time of each
search. Both searches use the same builds (``edgepipe.api.build``) and the
same stage cache, so the times compare the searches, not the tools.

    .venv/bin/python benchmarks/fit_benchmark.py                       # 3 models, 24 trials each
    .venv/bin/python benchmarks/fit_benchmark.py --models resnet8 --trials 16 --finetune-epochs 5 --grid-first
    .venv/bin/python benchmarks/fit_benchmark.py --models resnet8 --trials 16 --finetune-epochs 5 --grid-first --label-free
    .venv/bin/python benchmarks/fit_benchmark.py --models dscnn --trials 12 --epochs 3   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from edgepipe import api  # noqa: E402
from edgepipe.fit import FitOptions  # noqa: E402
from edgepipe.fit.score import score_report  # noqa: E402

try:
    from benchmarks import prune_models  # noqa: E402
except ImportError:  # run as a script: benchmarks/ is on sys.path
    import prune_models  # noqa: E402

GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
BOARD = "nrf52840"
#: The board's accuracy tolerance: a CI job that refuses a model 3 points worse than its float original.
MAX_DROP = 3.0


def prepare(name: str, folder: Path, epochs: int, labels: bool = True) -> Path:
    """Train the model briefly on digits, save it with its data and an edgepipe.yaml; the config's path.

    ``labels=False``: the project gets images only, as a user without a labelled set: recovery is
    distillation alone and the accuracy check is agreement with the float model (the board's
    ``min_agreement``, 100 - ``MAX_DROP``)."""
    import keras
    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(0)
    digits = load_digits()
    x, boxes = prune_models.inputs_for(name, digits.images / 16.0)
    y = digits.target.astype("int64")
    model = prune_models.BUILDERS[name]()
    targets = {"cls": y, "box": boxes} if boxes is not None else y
    losses = {"cls": "sparse_categorical_crossentropy", "box": "mse"} if boxes is not None \
        else "sparse_categorical_crossentropy"
    model.compile("adam", losses)
    train_targets = targets[:1200] if boxes is None else {k: v[:1200] for k, v in targets.items()}
    model.fit(x[:1200], train_targets, epochs=epochs, batch_size=32, verbose=0)
    model.save(folder / "model.keras")
    arrays = {"x_calib": x[:200], "x_train": x[:1200], "x_eval": x[1200:]}
    config = {"model": "model.keras", "data": {"representative": {"path": "data.npz", "x": "x_calib"},
                                               "train": {"path": "data.npz", "x": "x_train"}}}
    if boxes is None and not labels:
        config["data"]["eval"] = {"path": "data.npz", "x": "x_eval"}
    elif boxes is None:
        arrays.update(y_train=y[:1200], y_eval=y[1200:])
        config["data"]["train"]["y"] = "y_train"
        config["data"]["eval"] = {"path": "data.npz", "x": "x_eval", "y": "y_eval"}
    else:
        config["data"]["eval"] = {"path": "data.npz", "x": "x_eval"}
        config["outputs"] = {"cls": {"task": "classification"}, "box": {"task": "regression"}}
    np.savez(folder / "data.npz", **arrays)
    (folder / "edgepipe.yaml").write_text(yaml.safe_dump(config))
    return folder / "edgepipe.yaml"


def squeezed_board(config: Path, folder: Path, squeeze: float, ram_squeeze: float) -> tuple[Path, dict]:
    """A board like the nRF52840 whose latency and RAM budgets are these shares of what the model needs."""
    base = api.build(BOARD, config, out=folder / "as-is").report.to_dict()
    checks = {c["name"]: c for c in base["checks"]}
    ram, latency = checks["ram"]["measured"], checks["latency"]["measured"]
    budgets = {"ram": int(ram * ram_squeeze), "latency": latency * squeeze}
    targets = folder / "targets"
    targets.mkdir(exist_ok=True)
    (targets / "squeezed.yaml").write_text(yaml.safe_dump(
        {"name": "squeezed", "extends": BOARD, "memory": {"ram": budgets["ram"]},
         "latency": f"{budgets['latency'] * 1000:.3f}ms", "accuracy": {"max_drop": MAX_DROP}}))
    return targets, {"ram_unpruned": ram, "latency_unpruned": latency, **budgets}


def grid(config: Path, targets: Path, folder: Path, epochs: int, top: int,
         firsts: tuple[bool, ...] = (False,)) -> tuple[dict, float, int]:
    """(the uniform candidate that passes with the least damage, else the nearest miss; seconds; builds).

    ``firsts``: the grid runs each ratio with the first convolution kept (the default) and, given
    ``True`` too, pruned as well (``prune.prune_first``), so that fit's ``first`` knob is not an
    advantage the grid lacks. With fine-tuning, the ``top`` candidates that meet every budget with
    the least damage are built again with ``epochs`` of it, as fit does with its best candidates, so
    both searches get the same recovery."""
    started = time.monotonic()
    rows = [_uniform(config, targets, folder, ratio, 0, first) for first in firsts for ratio in GRID]
    within = sorted((r for r in rows if not any(b.over for b in r["score"].budgets)),
                    key=lambda r: r["score"].damage or 0.0)
    if epochs:
        rows += [_uniform(config, targets, folder, r["ratio"], epochs, r["first"]) for r in within[:top]]
    feasible = [r for r in rows if r["score"].feasible]
    best = min(feasible, key=lambda r: r["score"].damage or 0.0) if feasible \
        else min(rows, key=lambda r: r["score"].excess())
    return best, time.monotonic() - started, len(rows)


def _uniform(config: Path, targets: Path, folder: Path, ratio: float, epochs: int, first: bool = False) -> dict:
    prune = {"method": "channel", "ratio": ratio, "reconstruct": True, "prune_first": first}
    if epochs:
        prune["finetune"] = {"epochs": epochs}
    report = api.build("squeezed", config, out=folder / f"grid-{ratio}-{epochs}-{int(first)}",
                       overrides={"prune": prune}, targets_dir=targets).report.to_dict()
    label = f"uniform ratio {ratio}" + (", first conv too" if first else "") + (f", fine-tune {epochs}" if epochs else "")
    return {"settings": label, "ratio": ratio, "first": first, "score": score_report(report), "report": report}


def run_fit(config: Path, targets: Path, folder: Path, trials: int, epochs: int,
            top: int) -> tuple[dict | None, float, int]:
    started = time.monotonic()
    result = api.fit("squeezed", config, out=folder / "fit", targets_dir=targets,
                     options=FitOptions(trials=trials, finetune_epochs=epochs, finetune_top=top, fresh=True))
    seconds = time.monotonic() - started
    report = json.loads((folder / "fit" / "report.json").read_text())
    pick = result.shipped or result.nearest
    return ({"settings": pick.knobs.label(), "score": score_report(report), "report": report},
            seconds, len(result.records))


def agreement(report: dict) -> str:
    """Top-1 agreement (or SQNR) of the shipped int8 model with the unpruned float model, per output."""
    parts = []
    for out in (report.get("accuracy") or {}).get("outputs", []):
        vs = out.get("quantized_vs_original") or {}
        if out["task"] == "classification":
            value = vs.get("agreement", out.get("agreement"))
            parts.append(f"{out['name']} {value:.1f}%" if value is not None else f"{out['name']} -")
        else:
            err = vs or out.get("quantized_vs_float") or {}
            parts.append(f"{out['name']} {err.get('sqnr_db', float('nan')):.1f} dB")
    return ", ".join(parts)


def row(label: str, found: dict, seconds: float, builds: int) -> str:
    s = found["score"]
    uses = ", ".join(f"{b.name} {100 * b.ratio:.0f}%" for b in s.budgets)
    verdict = "fits" if s.feasible else "MISSES " + ", ".join(m["check"] for m in s.misses())
    return (f"  {label:5s} {verdict}: {found['settings']}; damage {100 * (s.damage or 0):.1f}% of the tolerance; "
            f"{uses}\n        agreement with the unpruned float model: {agreement(found['report'])}; "
            f"top-1 {_pct(s.accuracy.get('int8_top1'))} (float {_pct(s.accuracy.get('float_top1'))})"
            f"   ({builds} builds, {seconds:.0f} s)")


def _pct(value) -> str:
    return "-" if value is None else f"{value:.2f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="dscnn,xception,detector")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=8, help="training epochs of each model")
    parser.add_argument("--finetune-epochs", type=int, default=0,
                        help="fine-tuning of the best --finetune-top candidates of each search")
    parser.add_argument("--finetune-top", type=int, default=2)
    parser.add_argument("--squeeze", type=float, default=0.7, help="latency budget: this share of the unpruned's")
    parser.add_argument("--ram-squeeze", type=float, default=0.9, help="RAM budget: this share of the unpruned's")
    parser.add_argument("--grid-first", action="store_true",
                        help="the grid also prunes the first convolution (prune.prune_first), as fit may")
    parser.add_argument("--label-free", action="store_true",
                        help="no labels in the project: distillation alone, agreement with the float model judged")
    parser.add_argument("--searches", default="grid,fit", help="which searches to run: grid, fit or both")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fit-bench-"))
    os.environ.setdefault("EDGEPIPE_CACHE_DIR", str(root / "cache"))
    for name in args.models.split(","):
        folder = root / name
        folder.mkdir()
        config = prepare(name, folder, args.epochs, not args.label_free)
        targets, budgets = squeezed_board(config, folder, args.squeeze, args.ram_squeeze)
        print(f"{name}: unpruned RAM {budgets['ram_unpruned']} B, latency {budgets['latency_unpruned'] * 1e3:.1f} ms"
              f" on {BOARD}; board budgets RAM {budgets['ram']} B, latency {budgets['latency'] * 1e3:.1f} ms")
        searches = args.searches.split(",")
        if "grid" in searches:
            firsts = (False, True) if args.grid_first else (False,)
            print(row("grid", *grid(config, targets, folder, args.finetune_epochs, args.finetune_top, firsts)),
                  flush=True)
        if "fit" in searches:
            print(row("fit", *run_fit(config, targets, folder, args.trials, args.finetune_epochs,
                                      args.finetune_top)), flush=True)


if __name__ == "__main__":
    main()
