"""Kill real builds with SIGKILL at random moments; the output folder must always be one complete build.

A first build of each of two configurations fills the stage cache (A: the
target as given; B: a profile extending it with other budgets, plus C sources,
so the two complete builds differ in their files and in their manifests).
Then builds into the same folder alternate between A and B, each child killed
with SIGKILL after a random delay: a fifth of the kills at a moment drawn
over the whole build, the rest after the child announces the emit stage (a
plain :class:`~edgepipe.pipeline.progress.Progress` printing stage names; no
hook in edgepipe), at a delay drawn over the emit stage's calibrated length,
so most kills land while artifacts are written, the manifest verified, the
folder swapped and the previous build removed. After every kill, before the
next build, the folder must be exactly one complete build:

- its files are exactly those ``manifest.json`` lists (the artifacts, hashed,
  and ``report.json``, named) plus ``manifest.json`` (and the lock file, which
  a killed holder may leave), no temporary file;
- every size and sha256 matches the manifest, and ``report.json``'s artifacts
  match the files;
- manifest, report and file set are all configuration A or all B.

Where each kill landed is read from the file system the child left: no
staging sibling (before emit / after the old build was removed), a staging
sibling with the new build partly written (which files), or a sibling holding
the previous build (after the swap, while it was removed). Usage::

    python tools/kill_test.py -n 200                 # the bundled digits example, rpi4
    python tools/kill_test.py -n 500 --seed 7 --config path/to/edgepipe.yaml

The test suite runs 50 kills of the same harness (tests/ci/test_output_transaction.py).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

LOCK_NAME = ".edgepipe.lock"

CHILD = r"""
import sys
import edgepipe
from edgepipe.pipeline.progress import Progress

class Announce(Progress):
    def stage(self, name):
        print(name, flush=True)

target, config, out, emit_c = sys.argv[1:5]
edgepipe.build(target, config, out=out, overrides={"emit": ["c"]} if emit_c == "1" else None, progress=Announce())
print("done", flush=True)
"""


@dataclass(frozen=True)
class Config:
    name: str
    target: str
    emit_c: bool


@dataclass
class Tally:
    kills: int = 0
    finished: int = 0
    landed: collections.Counter = field(default_factory=collections.Counter)
    outcome: collections.Counter = field(default_factory=collections.Counter)
    emit_seconds: dict = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"{self.kills} SIGKILLs ({self.finished} builds finished before their kill time)",
                 "emit stage (calibrated): " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in self.emit_seconds.items()),
                 "where the kills landed:"]
        lines += [f"  {n:4d}  {where}" for where, n in sorted(self.landed.items(), key=lambda kv: -kv[1])]
        lines.append("what the folder held after the kill:")
        lines += [f"  {n:4d}  {what}" for what, n in sorted(self.outcome.items())]
        return "\n".join(lines)


def configurations(folder: Path, target: str) -> tuple[Config, Config]:
    """A: ``target``; B: a profile extending it with other latency/flash budgets, with C sources."""
    other = folder / f"{target}-kill-test.yaml"
    other.write_text(yaml.safe_dump({"extends": target, "latency": "40ms", "memory": {"flash": "31MiB"}}))
    return Config("A", target, False), Config("B", str(other), True)


def start(cfg: Config, config: Path, out: Path) -> tuple[subprocess.Popen, dict, threading.Event]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, cfg.target, str(config), str(out), "1" if cfg.emit_c else "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen: dict[str, float] = {}
    emit = threading.Event()

    def read():
        for line in proc.stdout:
            seen[line.strip()] = time.monotonic()
            if line.strip() == "emit":
                emit.set()
        emit.set()  # the child ended: do not wait for an announcement that never comes

    threading.Thread(target=read, daemon=True).start()
    return proc, seen, emit


def complete_build(cfg: Config, config: Path, out: Path) -> float:
    """One build run to the end; returns the emit stage's length (announcement to return)."""
    proc, seen, _ = start(cfg, config, out)
    proc.wait(timeout=600)
    time.sleep(0.05)  # let the reader thread take the last line
    if proc.returncode not in (0, 1) or "done" not in seen:
        raise RuntimeError(f"build {cfg.name} failed with exit {proc.returncode}")
    return seen["done"] - seen["emit"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_state(out: Path, configs: tuple[Config, Config]) -> str:
    """The configuration the folder holds, after checking it is exactly one complete build (AssertionError)."""
    manifest = json.loads((out / "manifest.json").read_text())
    report = json.loads((out / "report.json").read_text())
    listed = {a["path"]: a for a in manifest["artifacts"]}
    present = set(os.listdir(out)) - {LOCK_NAME}
    assert manifest["report"] == "report.json"
    assert present == set(listed) | {"manifest.json", "report.json"}, f"files {sorted(present)} != manifest {sorted(listed)}"
    for name, entry in listed.items():
        assert (out / name).stat().st_size == entry["bytes"] and sha256(out / name) == entry["sha256"], name
        assert entry == {**report["artifacts"][name], "path": name}, name
    assert set(report["artifacts"]) == set(listed), (sorted(report["artifacts"]), sorted(listed))
    for name, entry in report["artifacts"].items():
        assert entry["path"] == str(out / name) and sha256(out / name) == entry["sha256"], name
    by_budget = "B" if manifest["budgets"]["latency_s"] == 0.04 else "A"
    by_files = "B" if "model_data.cc" in listed else "A"
    by_report = "B" if report["target"]["profile"]["latency"] == 0.04 else "A"
    assert by_budget == by_files == by_report, (by_budget, by_files, by_report)
    assert {c.name: c for c in configs}[by_budget].emit_c == (by_files == "B")
    return by_budget


def siblings(out: Path) -> list[Path]:
    return sorted(p for p in out.parent.iterdir() if p.name.startswith(out.name + ".edgepipe-"))


def landing(out: Path, before: str, after: str, announced: bool) -> str:
    """Where the kill landed, read from what the child left behind."""
    left = siblings(out)
    if not left:
        if after != before:
            return "after the swap and the old build's removal (lock release, exit)"
        return "in the emit stage, before the staging folder existed" if announced else "before the emit stage"
    if after != before:
        return "after the swap, while the previous build (now the sibling) was removed"
    names = sorted(os.listdir(left[-1]))
    temp = [n[1:].rsplit(".", 2)[0] for n in names if n.endswith(".tmp")]
    done = [n for n in names if not n.endswith(".tmp")]
    if temp:
        return f"writing {temp[0]} (temp file, before its rename); {len(done)} file(s) staged"
    if LOCK_NAME in done:
        return "staged, verified and locked: at the swap"
    if "manifest.json" in done:
        return "manifest written, being verified"
    if not done:
        return "staging folder made, nothing written yet"
    return f"between files ({', '.join(done)} staged)"


def run(n_kills: int, config: Path, target: str, work: Path, seed: int, log=print) -> Tally:
    """``n_kills`` SIGKILLs of real builds into ``work/out``; raises AssertionError on any mixed folder."""
    rng = random.Random(seed)
    out = work / "out"
    configs = configurations(work, target)
    tally = Tally()
    whole = []
    for cfg in configs:  # fill the cache, and calibrate
        complete_build(cfg, config, out)
        t0 = time.monotonic()
        emit = [complete_build(cfg, config, out) for _ in range(2)]
        whole.append((time.monotonic() - t0) / 2)
        tally.emit_seconds[cfg.name] = statistics.median(emit)
    state = folder_state(out, configs)
    attempts = 0
    while tally.kills < n_kills:
        attempts += 1
        if attempts > 4 * n_kills + 20:
            raise RuntimeError(f"only {tally.kills} of {n_kills} kills landed in {attempts} builds")
        cfg = configs[1] if state == "A" else configs[0]  # every build changes the folder
        proc, seen, emit = start(cfg, config, out)
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0, max(whole)))
        else:
            emit.wait(timeout=600)
            time.sleep(rng.uniform(0, 1.2 * tally.emit_seconds[cfg.name]))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode != -signal.SIGKILL:
            tally.finished += 1
        else:
            tally.kills += 1
        after = folder_state(out, configs)
        assert after in (state, cfg.name)
        if proc.returncode == -signal.SIGKILL:
            tally.landed[landing(out, state, after, "emit" in seen)] += 1
            tally.outcome["the previous build (" + state + ")" if after == state else "the new build (" + after + ")"] += 1
        state = after
    cfg = configs[1] if state == "A" else configs[0]
    complete_build(cfg, config, out)  # the next build removes the killed builds' staging folders
    assert folder_state(out, configs) == cfg.name
    assert siblings(out) == [], siblings(out)
    assert not (out / LOCK_NAME).exists()
    return tally


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--kills", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", default="rpi4")
    ap.add_argument("--config", type=Path, help="project config (default: the bundled digits example)")
    args = ap.parse_args(argv)
    config = args.config
    if config is None:
        from edgepipe.api import _config_path

        config = Path(_config_path(None, "digits"))
    with tempfile.TemporaryDirectory(prefix="edgepipe-kill-") as tmp:
        os.environ.setdefault("EDGEPIPE_CACHE_DIR", str(Path(tmp) / "cache"))
        t0 = time.monotonic()
        tally = run(args.kills, config.resolve(), args.target, Path(tmp), args.seed)
        print(tally.summary())
        print(f"every folder was one complete build; {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
