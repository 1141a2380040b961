"""Fine-tuning in a child process, so a native crash in TensorFlow is an error, not a dead build.

TF 2.21's oneDNN kernels can segfault in training on some SeparableConv2D +
BatchNormalization models (exit 139, no message); ``TF_ENABLE_ONEDNN_OPTS=0``
avoids it. The parent writes the student and teacher as ``.keras`` files and
the data as ``.npy`` files into a temporary folder, runs ``python -m
edgepipe.prune.child <folder>`` (with ``TF_ENABLE_ONEDNN_OPTS=0`` unless the
user set it), relays each epoch's metrics (JSON lines on the child's stdout)
to ``on_epoch``, and loads the trained weights back into the student. A child
that dies raises :class:`~edgepipe.errors.InternalError` (exit 3) in one line
that names the workaround.

Variable constraints (the m:n masks) live on variables, not in layer configs,
so they travel pickled and are put back on the child's variables. A model the
child cannot load (custom layers it cannot import) is trained in this process.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgepipe.errors import EdgepipeError, InternalError

EPOCH = "@@epoch "
_TF_LOG = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages)")  # TensorFlow's own chatter on stderr
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)(: |$)")  # a traceback's "pkg.SomeError: message"
LOAD_FAILED = 5
#: Tests only: the child calls os.abort() before training, as a native crash would.
ABORT_HOOK = "EDGEPIPE_TEST_FINETUNE_CHILD_ABORT"


def finetune_in_child(student, teacher, train, eval, ft, on_epoch=None, tasks=None):
    """:func:`~edgepipe.prune.recovery.finetune_here` in a child process; ``student`` is updated in place."""
    from edgepipe.prune.recovery import finetune_here, result_from_dict

    with tempfile.TemporaryDirectory(prefix="edgepipe-finetune-") as tmp:
        folder = Path(tmp)
        try:
            _write_job(folder, student, teacher, train, eval, ft, tasks)
        except Exception:  # noqa: BLE001 - a model .keras cannot hold (custom objects): train it here
            return finetune_here(student, teacher, train, eval, ft, on_epoch, tasks)
        code, stderr = _run(folder, on_epoch)
        if code == LOAD_FAILED:  # the child cannot rebuild the model (custom layers): train it here
            return finetune_here(student, teacher, train, eval, ft, on_epoch, tasks)
        if code != 0:
            raise _crash_error(code, stderr)
        doc = json.loads((folder / "result.json").read_text())
        if "error" in doc:
            raise EdgepipeError(doc["error"])
        with np.load(folder / "weights.npz") as saved:
            student.set_weights([saved[f"arr_{i}"] for i in range(len(saved.files))])
    return result_from_dict(doc, student)


def _write_job(folder: Path, student, teacher, train, eval, ft, tasks) -> None:
    """Models as .keras files, data as .npy files, the rest as JSON."""
    student.save(folder / "student.keras")
    if teacher is not None:
        teacher.save(folder / "teacher.keras")
    constraints = {i: v.constraint for i, v in enumerate(student.weights) if getattr(v, "constraint", None)}
    (folder / "constraints.pkl").write_bytes(pickle.dumps(_picklable(constraints)))
    job = {"settings": ft.model_dump(), "tasks": dict(tasks) if tasks else None, "teacher": teacher is not None,
           "train": _write_data(folder, "train", train), "eval": _write_data(folder, "eval", eval) if eval else None}
    (folder / "job.json").write_text(json.dumps(job))


def _picklable(constraints: dict) -> dict:
    """The constraints that survive pickling (standard ones also come back with the layer config)."""
    out = {}
    for index, constraint in constraints.items():
        try:
            pickle.dumps(constraint)
        except Exception:  # noqa: BLE001 - a user's constraint object: the layer config restores what it can
            continue
        out[index] = constraint
    return out


def _write_data(folder: Path, name: str, data) -> dict:
    """``(x, labels)`` as .npy files; x's input names (Samples) and the labels' output names as JSON."""
    from edgepipe.data.samples import arrays_of, names_of

    x, y = data
    arrays = list(x) if isinstance(x, (list, tuple)) else arrays_of(x)
    for i, a in enumerate(arrays):
        np.save(folder / f"{name}_x{i}.npy", np.asarray(a))
    labels = y if isinstance(y, dict) else ({} if y is None else {None: y})
    keys = [k for k, v in labels.items() if v is not None]
    for i, k in enumerate(keys):
        np.save(folder / f"{name}_y{i}.npy", np.asarray(labels[k]))
    return {"inputs": len(arrays), "names": list(names_of(x) or []) or None, "as_list": isinstance(x, (list, tuple)),
            "labels": keys}


def _run(folder: Path, on_epoch) -> tuple[int, str]:
    """Run the child; relay epochs to ``on_epoch``; (exit code, its stderr)."""
    env = dict(os.environ)
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with open(folder / "stderr.txt", "w+b") as err:
        proc = subprocess.Popen([sys.executable, "-m", "edgepipe.prune.child", str(folder)], env=env,
                                stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            for line in proc.stdout:
                if line.startswith(EPOCH) and on_epoch is not None:
                    epoch, metrics = json.loads(line[len(EPOCH):])
                    on_epoch(epoch, metrics)
            code = proc.wait()
        except BaseException:  # Ctrl-C or an error in on_epoch: do not leave the child training
            proc.kill()
            proc.wait()
            raise
        err.seek(0)
        return code, err.read().decode(errors="replace")


def _crash_error(code: int, stderr: str) -> InternalError:
    """One line: how the child died (its last words on stderr), and the workaround for the known crash;
    a Python error in the child is named by its exception line, not by what the traceback printed last."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not _TF_LOG.match(ln)]
    raised = next((ln for ln in reversed(lines) if _EXCEPTION.match(ln)), None)
    if code > 0 and raised:
        return InternalError(f"fine-tuning failed: its child process raised {raised[:200]}; not a native crash: "
                             "rerun (an edgepipe install changed while it ran fails this way), and report the "
                             "message if it repeats")
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    if lines:
        how += f" ({lines[-1][:200]})"
    known = "TensorFlow's oneDNN kernels can crash in training on some SeparableConv2D+BatchNormalization models"
    value = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "0")
    if value != "0":
        fix = (f"{known}: run with TF_ENABLE_ONEDNN_OPTS=0 (edgepipe's default; yours is {value}), "
               "or remove prune.finetune")
    else:
        fix = (f"it already ran with TF_ENABLE_ONEDNN_OPTS=0, the workaround for the known crash ({known}): "
               "remove prune.finetune (pruning and the other recovery steps work without it)")
    return InternalError(f"fine-tuning crashed: its child process {how}; {fix}")


# --- the child ----------------------------------------------------------------------------------------


def _read_data(folder: Path, name: str, meta: dict | None):
    if meta is None:
        return None
    from edgepipe.data.samples import Samples

    arrays = [np.load(folder / f"{name}_x{i}.npy") for i in range(meta["inputs"])]
    x = Samples(arrays, meta["names"]) if meta["names"] else (arrays if meta["as_list"] else arrays[0])
    labels = {k: np.load(folder / f"{name}_y{i}.npy") for i, k in enumerate(meta["labels"])}
    y = labels.get(None) if None in labels else (labels or None)
    return x, y


def _load(folder: Path):
    """(student, teacher) with the student's variable constraints put back."""
    import keras

    student = keras.saving.load_model(folder / "student.keras", compile=False, safe_mode=False)
    teacher_path = folder / "teacher.keras"
    teacher = keras.saving.load_model(teacher_path, compile=False, safe_mode=False) if teacher_path.exists() else None
    for index, constraint in pickle.loads((folder / "constraints.pkl").read_bytes()).items():
        student.weights[index].constraint = constraint
    return student, teacher


def main(folder: Path) -> int:
    """Train as the job says; write result.json and weights.npz. Exit LOAD_FAILED if a model will not load."""
    from edgepipe.prune.recovery import finetune_here
    from edgepipe.prune.settings import FinetuneSettings

    if os.environ.get(ABORT_HOOK) == "1":
        os.abort()
    if os.environ.get(ABORT_HOOK) == "raise":
        raise RuntimeError("the test hook raised in the fine-tuning child")
    job = json.loads((folder / "job.json").read_text())
    try:
        student, teacher = _load(folder)
    except Exception as exc:  # noqa: BLE001 - any failure to rebuild the model: the parent trains it itself
        print(f"cannot load the model in the child: {exc}", file=sys.stderr)
        return LOAD_FAILED

    def relay(epoch: int, metrics: dict) -> None:
        print(EPOCH + json.dumps([epoch, metrics]), flush=True)

    try:
        result = finetune_here(student, teacher, _read_data(folder, "train", job["train"]),
                               _read_data(folder, "eval", job["eval"]), FinetuneSettings(**job["settings"]),
                               relay, job["tasks"])
    except EdgepipeError as exc:
        (folder / "result.json").write_text(json.dumps({"error": str(exc)}))
        return 0
    np.savez(folder / "weights.npz", *student.get_weights())
    (folder / "result.json").write_text(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
