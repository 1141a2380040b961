"""The child side of :mod:`edgepipe.runtimes.isolated`: hosts one interpreter, answers commands.

Run as ``python -m edgepipe.runtimes.worker``. Requests arrive on stdin and
answers leave on a private copy of stdout; file descriptor 1 itself is pointed
at stderr first, so whatever the C++ runtimes print can never corrupt the
answers. A runtime's refusal (a Python exception) is answered as
``(False, message)``; a crash simply ends the process, which the parent reports.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys

_HEADER = struct.Struct("<Q")


def _read_exact(stream, n: int) -> bytes | None:
    data = stream.read(n)
    return data if data is not None and len(data) == n else None


def _serve(requests, answers) -> None:
    state: dict = {}
    while True:
        header = _read_exact(requests, _HEADER.size)
        if header is None:
            return
        command, kwargs = pickle.loads(_read_exact(requests, _HEADER.unpack(header)[0]))
        if command == "quit":
            return
        try:
            reply = (True, _handle(state, command, kwargs))
        except Exception as exc:  # noqa: BLE001 - the runtime's own words go back to the parent
            reply = (False, f"{type(exc).__name__}: {exc}")
        data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        answers.write(_HEADER.pack(len(data)) + data)
        answers.flush()


def _handle(state: dict, command: str, kw: dict):
    if command == "open":
        return _open(state, **kw)
    if command == "raw":
        runner = state["runner"]
        outs = runner.raw(kw["x"])
        return {"outputs": outs, "batched": runner.batched, "batch_note": runner.batch_note}
    if command == "latency":
        return state["runner"].latency(kw["sample"], repeats=kw["repeats"], budget_s=kw["budget_s"]).to_dict()
    if command == "intermediates":
        from edgepipe.runtimes.litert import intermediates_in_process

        return intermediates_in_process(kw["model"], kw["x"], kw["indices"])
    if command == "single_op":
        from edgepipe.harness.crosscheck import run_single_op

        return run_single_op(kw["runtime"], kw["model"], kw["inputs"], kw["arena"])
    raise ValueError(f"unknown worker command {command!r}")


def _open(state: dict, name: str, model: bytes, threads: int, arena: int | None, rounding: str | None) -> dict:
    from edgepipe.runtimes.base import in_process_runner
    from edgepipe.tflite.model import parse_tflite

    runner = in_process_runner(name, model, threads, arena, rounding)
    state["runner"] = runner
    outs = parse_tflite(model).output_tensors
    return {"batched": runner.batched, "batch_note": runner.batch_note, "arena": getattr(runner, "arena_bytes", None),
            "output_quantization": [((t.scale[0] if t.scale else 1.0), (t.zero_point[0] if t.zero_point else 0))
                                    for t in outs]}


def main() -> None:
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # C++ prints to fd 1 land in the log, not in the answers
    sys.stdout = sys.stderr
    _serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
