"""Fuzz how edgepipe reads a .tflite: seeded mutations of small real models through the real CLI.

Each case takes one model, applies one seeded mutation (byte flips, truncation, or a field
changed through the schema's object API: tensor shapes, types, buffers, operator and
subgraph tensor indices, opcode indices and builtin codes, quantization parameters,
builtin options, buffer contents) and runs ``edgepipe inspect FILE -t rpi4 --json``,
``edgepipe inspect FILE -t esp32-s3 --json`` (TFLite Micro runs the model) and, for a
share of the cases, ``edgepipe verify FILE -t rpi4 -d data.npz --json`` with data shaped
like the model's input. The contract every run must keep:

- exit code 0, 1, 2 or 3 (no signal, no other code);
- stdout is exactly one JSON document;
- no ``Traceback`` on stderr;
- it ends within the timeout (no hang).

Exit 3 (an internal error) keeps the contract but is an edgepipe bug: the summary lists those
too, with the traceback ``--debug`` gives. Usage::

    python tools/fuzz_tflite.py -n 10000 -j 2            # builds the models first (needs TensorFlow)
    python tools/fuzz_tflite.py --models DIR -n 500      # models from tests/mcu/build_models.py
    python tools/fuzz_tflite.py --models DIR --seed 1234 --keep case.tflite   # reproduce one case

The test suite runs a few hundred cases of the same generator (tests/test_fuzz_tflite.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

REPO = Path(__file__).resolve().parent.parent
EDGEPIPE = Path(sys.executable).parent / "edgepipe"
ALLOWED_EXITS = {0, 1, 2, 3}
INSPECT_TARGETS = ("rpi4", "esp32-s3")
#: Single-output classifiers verify can score (the others' data would be refused, which is fine but dull).
VERIFY_MODELS = ("cnn_int8", "cnn_float", "cnn_uint8_out", "gelu_int8", "mlp_hybrid", "mlp_float16", "mlp_sparse",
                 "cnn_wide_int8")

_INTS = (0, -1, -7, 1, 2, 3, 255, 1 << 16, (1 << 31) - 1, -(1 << 31))
_FLOATS = (math.nan, math.inf, -math.inf, 0.0, -1.0, 1e-45, 1e38)
_N_BUILTINS = max(v for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_"))


# ---------------------------------------------------------------- mutations

def _pick(rng: random.Random, seq):
    return seq[rng.randrange(len(seq))] if len(seq) else None


def _ints(values) -> list[int]:
    return [int(v) for v in values] if values is not None else []


def _index_values(rng: random.Random, n: int) -> int:
    """An index that may be valid, absent (-1), just past the end or wildly out of range."""
    return rng.choice((rng.randrange(max(n, 1)), -1, -2, n, n + 3, (1 << 31) - 1, -(1 << 31)))


def _tensors(model) -> list:
    return [(sg, t) for sg in model.subgraphs or [] for t in sg.tensors or []]


def _operators(model) -> list:
    return [(sg, op) for sg in model.subgraphs or [] for op in sg.operators or []]


def m_tensor_shape(model, rng):
    _, t = _pick(rng, _tensors(model))
    shape = _ints(t.shape)
    how = rng.randrange(5)
    if how == 0 and shape:
        shape[rng.randrange(len(shape))] = rng.choice(_INTS + (0, 0, -1))
    elif how == 1 and shape:
        shape.pop(rng.randrange(len(shape)))
    elif how == 2:
        shape.insert(rng.randrange(len(shape) + 1), rng.choice((1, 2, 0, -1, 7)))
    elif how == 3:
        shape = []
    else:
        shape = [rng.choice((1, 2, 3, 0, -1, 1 << 20)) for _ in range(rng.randrange(1, 9))]
    t.shape = shape
    if rng.random() < 0.3:
        t.shapeSignature = [rng.choice((-1, 1, 0, -5)) for _ in shape]
    return f"tensor_shape -> {shape}"


def m_tensor_type(model, rng):
    _, t = _pick(rng, _tensors(model))
    t.type = rng.choice((*range(0, 20), 99, 127, -1, -128))
    return f"tensor_type -> {t.type}"


def m_tensor_buffer(model, rng):
    _, t = _pick(rng, _tensors(model))
    n = len(model.buffers or [])
    t.buffer = rng.choice((0, rng.randrange(max(n, 1)), n, n + 5, (1 << 32) - 1))
    return f"tensor_buffer -> {t.buffer}"


def m_operator_io(model, rng):
    sg, op = _pick(rng, _operators(model))
    n = len(sg.tensors or [])
    role = rng.choice(("inputs", "outputs"))
    values = _ints(getattr(op, role))
    how = rng.randrange(4)
    if how == 0 and values:
        values[rng.randrange(len(values))] = _index_values(rng, n)
    elif how == 1 and values:
        values.pop(rng.randrange(len(values)))
    elif how == 2:
        values.append(_index_values(rng, n))
    else:
        values = []
    setattr(op, role, values)
    return f"operator_{role} -> {values}"


def m_opcode_index(model, rng):
    _, op = _pick(rng, _operators(model))
    n = len(model.operatorCodes or [])
    op.opcodeIndex = rng.choice((rng.randrange(max(n, 1)), n, n + 2, (1 << 32) - 1))
    return f"opcode_index -> {op.opcodeIndex}"


def m_opcode_builtin(model, rng):
    code = _pick(rng, model.operatorCodes or [])
    code.builtinCode = rng.choice((rng.randrange(_N_BUILTINS + 1), _N_BUILTINS + 5, -1, (1 << 31) - 1))
    code.deprecatedBuiltinCode = min(max(code.builtinCode, 0), 127)
    return f"opcode_builtin -> {code.builtinCode}"


def m_subgraph_io(model, rng):
    sg = _pick(rng, model.subgraphs)
    n = len(sg.tensors or [])
    role = rng.choice(("inputs", "outputs"))
    values = _ints(getattr(sg, role))
    how = rng.randrange(3)
    if how == 0 and values:
        values[rng.randrange(len(values))] = _index_values(rng, n)
    elif how == 1:
        values.append(_index_values(rng, n))
    else:
        values = []
    setattr(sg, role, values)
    return f"subgraph_{role} -> {values}"


def m_quantization(model, rng):
    quantized = [(sg, t) for sg, t in _tensors(model) if t.quantization is not None and t.quantization.scale is not None]
    _, t = _pick(rng, quantized) if quantized and rng.random() < 0.8 else _pick(rng, _tensors(model))
    q = t.quantization or schema.QuantizationParametersT()
    t.quantization = q
    scale = [float(s) for s in q.scale] if q.scale is not None else []
    zp = _ints(q.zeroPoint)
    how = rng.randrange(6)
    if how == 0:
        scale = []
    elif how == 1:
        bad = rng.choice(_FLOATS)
        scale = [bad] * max(len(scale), 1) if rng.random() < 0.5 else scale[:-1] + [bad]
    elif how == 2:
        zp = [rng.choice((300, -300, (1 << 40), -(1 << 40)))] * max(len(zp), 1)
    elif how == 3:
        zp = zp[: len(zp) // 2] or [0, 0, 0]
    elif how == 4:
        scale = scale + [0.5] * rng.randrange(1, 5)
    else:
        q.quantizedDimension = rng.choice((5, -1, 100, (1 << 31) - 1))
    q.scale, q.zeroPoint = scale, zp
    return f"quantization scale={scale[:3]}.. zp={zp[:3]}.. dim={q.quantizedDimension}"


def m_builtin_options(model, rng):
    with_options = [(sg, op) for sg, op in _operators(model) if op.builtinOptions is not None
                    and any(isinstance(v, (int, float)) for v in vars(op.builtinOptions).values())]
    if not with_options:
        return m_operator_io(model, rng)
    _, op = _pick(rng, with_options)
    opts = op.builtinOptions
    names = sorted(k for k, v in vars(opts).items() if isinstance(v, (int, float)))
    name = _pick(rng, names)
    old = getattr(opts, name)
    if isinstance(old, bool):
        new = not old
    elif isinstance(old, float):
        new = rng.choice(_FLOATS)
    else:
        new = rng.choice((0, 0, -1, 2, 3, 5, 100, 127, -128, 1 << 20))
    setattr(opts, name, new)
    if rng.random() < 0.1:
        op.builtinOptions, op.builtinOptionsType = None, 0
        return f"builtin_options dropped on {type(opts).__name__}"
    return f"builtin_options {type(opts).__name__}.{name} -> {new}"


def m_buffer_data(model, rng):
    filled = [b for b in model.buffers or [] if b.data is not None and len(b.data)]
    buf = _pick(rng, filled)
    data = bytes(np.asarray(buf.data, dtype=np.uint8))
    how = rng.randrange(4)
    if how == 0:
        data = data[: rng.randrange(1, max(len(data), 2))]
    elif how == 1:
        data = data[:1]
    elif how == 2:
        data = data + bytes(rng.randrange(1, 64))
    else:
        buf.offset, buf.size = rng.choice(((1 << 40, 16), (16, 1 << 40), (2, 4), (1 << 63, 1 << 63)))
        return f"buffer offset={buf.offset} size={buf.size}"
    buf.data = list(data)
    return f"buffer_data -> {len(data)} bytes"


STRUCTURED = (m_tensor_shape, m_tensor_type, m_tensor_buffer, m_operator_io, m_opcode_index, m_opcode_builtin,
              m_subgraph_io, m_quantization, m_builtin_options, m_buffer_data)


def _pack(model) -> bytes:
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _flip_bytes(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    out = bytearray(data)
    spots = [rng.randrange(8, len(out)) for _ in range(rng.randrange(1, 17))]
    for i in spots:
        out[i] = rng.randrange(256) if rng.random() < 0.5 else out[i] ^ (1 << rng.randrange(8))
    return f"byte_flips at {spots[:5]}..", bytes(out)


def mutate(data: bytes, seed: int) -> tuple[str, bytes]:
    """(what was done, the mutated bytes): the same seed always gives the same case."""
    rng = random.Random(seed)
    kind = rng.random()
    if kind < 0.15:
        return _flip_bytes(data, rng)
    if kind < 0.22:
        cut = rng.choice((rng.randrange(len(data)), rng.randrange(16, 64), len(data) - rng.randrange(1, 64)))
        return f"truncate to {cut}", data[:cut]
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    steps = [rng.choice(STRUCTURED)(model, rng) for _ in range(1 if rng.random() < 0.75 else rng.randrange(2, 4))]
    try:
        return " + ".join(steps), _pack(model)
    except Exception as exc:  # noqa: BLE001 - a value the field cannot hold: mutate the bytes instead
        what, out = _flip_bytes(data, rng)
        return f"{' + '.join(steps)} (unpackable: {type(exc).__name__}) -> {what}", out


# ---------------------------------------------------------------- running

@dataclass
class Run:
    command: str
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    def violations(self) -> list[str]:
        if self.returncode is None:
            return [f"{self.command}: no exit within the timeout (hang)"]
        found = []
        if self.returncode not in ALLOWED_EXITS:
            found.append(f"{self.command}: exit code {self.returncode}")
        try:
            json.loads(self.stdout)
        except ValueError:
            found.append(f"{self.command}: stdout is not exactly one JSON document: {self.stdout[:200]!r}")
        if "Traceback" in self.stderr:
            found.append(f"{self.command}: traceback on stderr: {self.stderr[-2000:]}")
        return found


@dataclass
class Case:
    seed: int
    model: str
    mutation: str
    runs: list[Run] = field(default_factory=list)

    @property
    def violations(self) -> list[str]:
        return [v for r in self.runs for v in r.violations()]


def _run(args: list[str], timeout: float) -> Run:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.monotonic()
    command = " ".join(["edgepipe", *args])
    try:
        proc = subprocess.run([str(EDGEPIPE), *args], capture_output=True, text=True, errors="replace",
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        return Run(command, None, _text(exc.stdout), _text(exc.stderr), time.monotonic() - start)
    return Run(command, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def verify_data(model_path: Path, folder: Path) -> Path:
    """An .npz of 8 inputs shaped like the (unmutated) model's first input, labels in its output range."""
    from edgepipe.tflite.model import read_tflite

    m = read_tflite(model_path)
    x_shape = tuple(max(d, 1) for d in m.input_tensors[0].shape[1:])
    classes = max(int(np.prod(m.output_tensors[0].shape[1:])), 1)
    rng = np.random.default_rng(0)
    path = folder / f"{model_path.stem}.npz"
    np.savez(path, x=rng.random((8, *x_shape), dtype=np.float32), y=rng.integers(0, classes, 8))
    return path


def run_case(seed: int, models: dict[str, Path], folder: Path, data: dict[str, Path], verify: bool,
             timeout: float, keep: Path | None = None) -> Case:
    names = sorted(models)
    name = names[seed % len(names)]
    mutation, mutated = mutate(models[name].read_bytes(), seed)
    path = keep or folder / f"case-{seed}.tflite"
    path.write_bytes(mutated)
    case = Case(seed, name, mutation)
    for target in INSPECT_TARGETS:
        case.runs.append(_run(["inspect", str(path), "-t", target, "--json"], timeout))
    if verify and name in data:
        case.runs.append(_run(["verify", str(path), "-t", "rpi4", "-d", str(data[name]), "--json"], timeout))
    if keep is None:
        path.unlink()
    return case


def fuzz(seeds, models: dict[str, Path], workers: int = 2, verify_every: int = 5, timeout: float = 120,
         on_case=None) -> list[Case]:
    """Run every seed (verify on one case in ``verify_every``); ``on_case(case)`` after each."""
    with tempfile.TemporaryDirectory(prefix="edgepipe-fuzz-") as tmp:
        folder = Path(tmp)
        data = {name: verify_data(path, folder) for name, path in models.items() if name in VERIFY_MODELS}
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(run_case, s, models, folder, data, s % verify_every == 0, timeout) for s in seeds]
            cases = []
            for f in futures:
                cases.append(f.result())
                if on_case:
                    on_case(cases[-1])
    return cases


def build_models(folder: Path) -> dict[str, Path]:
    """The tiny models of tests/mcu/build_models.py (in a child process: it imports TensorFlow)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "mcu" / "build_models.py"), str(folder)],
                          capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"building the models failed:\n{proc.stderr[-3000:]}")
    return models_in(folder)


def models_in(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(Path(folder).glob("*.tflite"))}


def debug_traceback(case: Case, models: dict[str, Path], folder: Path, data: dict) -> str:
    """The traceback ``--debug`` prints for a case's first exit-3 run."""
    path = folder / f"debug-{case.seed}.tflite"
    path.write_bytes(mutate(models[case.model].read_bytes(), case.seed)[1])
    run = next(r for r in case.runs if r.returncode == 3)
    words = run.command.split()[1:]
    args = [words[0], str(path), *words[2:]]
    if words[0] == "verify":
        args[args.index("-d") + 1] = str(data[case.model])
    res = _run(["--debug", *args], 300)
    return res.stderr[-4000:]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--mutations", type=int, default=10_000, help="How many cases (seeds start..start+n).")
    ap.add_argument("--start", type=int, default=0, help="First seed.")
    ap.add_argument("--seed", type=int, help="Run this one seed only (to reproduce a case).")
    ap.add_argument("--keep", type=Path, help="With --seed: write the mutated model here.")
    ap.add_argument("--models", type=Path, help="Folder of .tflite models (default: build them now).")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="Cases run at once.")
    ap.add_argument("--verify-every", type=int, default=5, help="Also run `verify` on one case in this many.")
    ap.add_argument("--timeout", type=float, default=120, help="Seconds before a run counts as a hang.")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="edgepipe-fuzz-models-") as tmp:
        models = models_in(args.models) if args.models else build_models(Path(tmp))
        if args.seed is not None:
            folder = Path(tmp)
            data = {n: verify_data(p, folder) for n, p in models.items() if n in VERIFY_MODELS}
            case = run_case(args.seed, models, folder, data, True, args.timeout, keep=args.keep)
            print(json.dumps({"seed": case.seed, "model": case.model, "mutation": case.mutation,
                              "runs": [{"command": r.command, "exit": r.returncode, "stderr": r.stderr[-2000:]}
                                       for r in case.runs], "violations": case.violations}, indent=2))
            return 1 if case.violations else 0

        exits: Counter = Counter()
        bad, internal = [], []
        start = time.monotonic()

        def progress(case: Case) -> None:
            for r in case.runs:
                words = r.command.split()
                exits[(f"{words[1]} {words[words.index('-t') + 1]}", "hang" if r.returncode is None
                       else r.returncode)] += 1
            if case.violations:
                bad.append(case)
            if any(r.returncode == 3 for r in case.runs):
                internal.append(case)
            done = case.seed - args.start + 1
            if done % 100 == 0:
                print(f"{done} cases, {time.monotonic() - start:.0f} s, {len(bad)} violating, "
                      f"{len(internal)} with exit 3", file=sys.stderr, flush=True)

        cases = fuzz(range(args.start, args.start + args.mutations), models, args.jobs, args.verify_every,
                     args.timeout, progress)
        runs = sum(len(c.runs) for c in cases)
        print(f"{len(cases)} mutations, {runs} runs in {time.monotonic() - start:.0f} s")
        for (command, code), n in sorted(exits.items(), key=str):
            print(f"  {command:16} exit {code}: {n}")
        print(f"violations: {len(bad)} cases")
        for case in bad:
            print(f"- seed {case.seed} ({case.model}: {case.mutation})")
            for v in case.violations:
                print("    " + v.replace("\n", "\n    "))
        print(f"internal errors (exit 3, contract kept but a bug): {len(internal)} cases")
        with tempfile.TemporaryDirectory() as dbg:
            data = {n: verify_data(p, Path(dbg)) for n, p in models.items() if n in VERIFY_MODELS}
            seen = set()
            for case in internal:
                run = next(r for r in case.runs if r.returncode == 3)
                first_line = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else ""
                print(f"- seed {case.seed} ({case.model}: {case.mutation}): {run.command}: {first_line}")
                if first_line not in seen:
                    seen.add(first_line)
                    print("    " + debug_traceback(case, models, Path(dbg), data).replace("\n", "\n    "))
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
