"""An ONNX model as a Keras model, converted by onnx2tf and checked against ONNX Runtime.

onnx2tf (maintained, widely used for ONNX → TFLite) rebuilds the ONNX graph
as a Keras 2 (``tf_keras``) model of TensorFlow ops, channels-last. Keras 3
cannot run a Keras 2 model as its own layers, so edgepipe calls it from one
layer (:mod:`edgepipe.keras_io.signature`), as for a SavedModel: it
calibrates, converts to int8 and is verified like any other model, but it is
one opaque layer to the pruner.

onnx2tf is run with what keeps a build offline and side-effect free: its
files go to a temporary folder that is removed (and model saving is off); its
own check, which downloads sample images from the internet, gets
deterministic noise instead; onnx-simplifier folds constants first, in this
process (:func:`_simplified`). It sets environment
variables on import (``TF_USE_LEGACY_KERAS=1``) that would change how the
rest of the process loads Keras: they are restored.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from edgepipe.errors import InputError, MissingDependencyError
from edgepipe.foreign.converted import Converted, ForeignConversionError
from edgepipe.foreign.deps import ONNX_EXTRA, need, version
from edgepipe.foreign.layout import detect

PURPOSE = "loading an ONNX model"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CHUNK = 64


def load_onnx(path: Path, shapes: dict | None = None) -> Converted:
    """The ONNX file at ``path`` converted (see the module docstring); ``shapes``: per-sample
    source-layout shapes, by edgepipe input name, for dimensions the file leaves dynamic."""
    if not path.is_file():
        raise InputError(str(path), "an ONNX file", "no such file")
    data = path.read_bytes()
    proto = parse(data, str(path))
    return convert(proto, data, str(path), "onnx", ort_runner(data, proto), f"ONNX Runtime {version('onnxruntime')}",
                   shapes)


def parse(data: bytes, where: str):
    """The ONNX ``ModelProto`` in ``data``; a file that is not one is the user's input (exit 2)."""
    onnx = need("onnx", ONNX_EXTRA, PURPOSE)
    try:
        proto = onnx.load_from_string(data)
        onnx.checker.check_model(proto)
    except Exception as exc:  # noqa: BLE001 - protobuf and the checker raise many types
        raise InputError(where, "a valid ONNX model", f"{type(exc).__name__}: {_first_line(str(exc))}") from None
    return proto


def graph_inputs(proto) -> list:
    """The graph's real inputs (older exporters list initializers as inputs too)."""
    inits = {i.name for i in proto.graph.initializer}
    return [i for i in proto.graph.input if i.name not in inits]


def _dims(value_info) -> list:
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def ort_runner(data: bytes, proto):
    """``run(arrays) -> outputs``: ONNX Runtime on CPU, chunked; one sample at a time for a fixed batch."""
    ort = need("onnxruntime", ONNX_EXTRA, PURPOSE)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [i.name for i in graph_inputs(proto)]
    fixed = {_dims(i)[0] for i in graph_inputs(proto) if _dims(i)}
    step = 1 if fixed and None not in fixed else _CHUNK

    def run(arrays: list) -> list:
        parts = []
        for s in range(0, len(arrays[0]), step):
            parts.append(sess.run(None, {n: np.asarray(a[s:s + step], np.float32) for n, a in zip(names, arrays)}))
        return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]

    return run


def convert(proto, data: bytes, where: str, kind: str, run_source, framework: str,
            shapes: dict | None = None, steps: list[str] | None = None) -> Converted:
    """onnx2tf on ``proto``, wrapped as a Keras model with clean names and a batch-free input.

    ``shapes``: per-sample source-layout shapes by (clean) input name, for the dimensions the graph leaves
    dynamic (``inputs.<name>.shape``): the graph's inputs are fixed to them before it is simplified and converted.
    """
    from edgepipe.keras_io import import_tensorflow

    tf = import_tensorflow()
    sources_in = [i.name for i in graph_inputs(proto)]
    sources_out = [o.name for o in proto.graph.output]
    in_names, out_names = clean_names(sources_in, "input"), clean_names(sources_out, "output")
    by_source = {s: tuple(shapes[n]) for n, s in zip(in_names, sources_in) if n in (shapes or {})}
    steps = list(steps or [])
    km = _onnx2tf(_simplified(_with_shapes(proto, by_source, steps), steps), where)
    if len(km.inputs) != len(sources_in) or len(km.outputs) != len(sources_out):
        raise ForeignConversionError(f"{where}: onnx2tf made a model with {len(km.inputs)} input(s) and "
                                     f"{len(km.outputs)} output(s); the ONNX graph has {len(sources_in)} and "
                                     f"{len(sources_out)}")
    src_shapes = {i.name: _dims(i) for i in graph_inputs(proto)}
    for s, dims in by_source.items():
        if len(dims) == len(src_shapes[s]) - 1:
            src_shapes[s] = [src_shapes[s][0], *dims]
    layouts = {n: detect(src_shapes[s], [None, *t.shape[1:]]) for n, s, t in zip(in_names, sources_in, km.inputs)}
    model = _as_keras(km, in_names, out_names, tf, _model_name(where, kind), _weights(proto))
    return Converted(model, kind, where, hashlib.sha256(data).hexdigest(), dict(zip(in_names, sources_in)),
                     dict(zip(out_names, sources_out)), layouts, run_source, framework,
                     [*steps, f"onnx2tf {version('onnx2tf')} (ONNX → TensorFlow, channels-last)"])


def _simplified(proto, steps: list[str]):
    """The graph with constants folded by onnx-simplifier, in this process, when it is installed.

    onnx2tf needs constant weights: a graph that computes them (``ConstantOfShape``,
    ``Shape`` → ``Reshape`` chains) fails on its first Conv without this. onnx2tf
    would run the ``onnxsim`` command itself, if it is on ``PATH``; running it here
    does not depend on that. The result is checked against the original graph
    (:mod:`.reference`) like every conversion; if simplifying fails, the original is converted.
    """
    try:
        import onnxsim
    except ImportError:
        steps.append("onnx-simplifier not installed: graph converted as it is")
        return proto
    try:
        from edgepipe.fdcapture import captured

        with captured():
            simple, ok = onnxsim.simplify(proto)
    except Exception as exc:  # noqa: BLE001 - its C++ core raises many types
        steps.append(f"onnx-simplifier {version('onnxsim')} failed ({type(exc).__name__}): graph converted as it is")
        return proto
    if not ok:
        steps.append(f"onnx-simplifier {version('onnxsim')} could not check its result: graph converted as it is")
        return proto
    steps.append(f"onnx-simplifier {version('onnxsim')} (constants folded)")
    return simple


def clean_names(names: list[str], stem: str) -> list[str]:
    """Names Keras and a ``.tflite`` signature take (letters, digits, ``_``), unique, in order."""
    out: list[str] = []
    for i, name in enumerate(names):
        clean = re.sub(r"\W+", "_", name).strip("_") or f"{stem}_{i}"
        if clean[0].isdigit():
            clean = f"{stem}_{clean}"
        while clean in out:
            clean += "_"
        out.append(clean)
    return out


def _with_shapes(proto, shapes: dict, steps: list[str]):
    """A copy of ``proto`` whose inputs' dynamic per-sample dimensions are fixed to ``shapes`` (by source name)."""
    if not shapes:
        return proto
    fixed = type(proto)()
    fixed.CopyFrom(proto)
    for inp in graph_inputs(fixed):
        if inp.name in shapes:
            dims = inp.type.tensor_type.shape.dim[1:]
            for d, size in zip(dims, shapes[inp.name]):
                d.Clear()
                d.dim_value = int(size)
            steps.append(f"input {inp.name!r} fixed to {list(shapes[inp.name])} per sample (inputs.<name>.shape)")
    del fixed.graph.value_info[:]  # shapes inferred from the dynamic ones would contradict the fixed ones
    return fixed


def _onnx2tf(proto, where: str):
    """The tf_keras model onnx2tf builds; its failure becomes one line naming the ONNX op (exit 3)."""
    from edgepipe.fdcapture import captured

    saved = dict(os.environ)
    try:
        with captured():
            onnx2tf = need("onnx2tf", ONNX_EXTRA, PURPOSE)
            import onnx2tf.onnx2tf as o2t_main
    except MissingDependencyError:
        raise
    except Exception as exc:  # noqa: BLE001 - its own import-time failures
        raise ForeignConversionError(f"onnx2tf could not be imported: {type(exc).__name__}: {exc}") from None
    finally:
        _restore(saved)
    downloader, o2t_main.download_test_image_data = o2t_main.download_test_image_data, _offline_test_images
    with tempfile.TemporaryDirectory(prefix="edgepipe-onnx2tf-") as tmp:
        src = Path(tmp, "model.onnx")
        src.write_bytes(proto.SerializeToString())
        try:
            with captured() as log:
                km = onnx2tf.convert(input_onnx_file_path=str(src), output_folder_path=str(Path(tmp, "out")),
                                     disable_model_save=True, not_use_onnxsim=True, non_verbose=True)
        except BaseException as exc:  # noqa: BLE001 - onnx2tf raises anything and calls sys.exit(1)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise ForeignConversionError(_failure(exc, log.text, proto, where)) from exc
        finally:
            _restore(saved)
            o2t_main.download_test_image_data = downloader
    if km is None:
        raise ForeignConversionError(f"{where}: onnx2tf returned no model: {_last_error(log.text)}")
    return km


def _restore(saved: dict) -> None:
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    os.environ.update(saved)


def _offline_test_images() -> np.ndarray:
    """What onnx2tf's own check would download (20 images, 128×128×3 in [0, 1]): deterministic noise."""
    return np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)


def _failure(exc: BaseException, log: str, proto, where: str) -> str:
    """``where: onnx2tf failed on ONNX op Type 'name': message`` (one line)."""
    name = getattr(exc, "onnx_op_name", None)
    op = None
    if name:
        plain = re.sub("^wa/", "/", name)
        op = next((n for n in proto.graph.node if n.name in (name, plain)), None)
    missing = re.match(r"No module named 'onnx2tf\.ops\.(\w+)'", str(exc))
    if missing:
        kind = missing[1]
        node = next((n for n in proto.graph.node if n.op_type == kind), None)
        return (f"{where}: onnx2tf {version('onnx2tf')} cannot convert ONNX op {kind}"
                f"{f' {node.name!r}' if node is not None and node.name else ''}: not implemented by onnx2tf")
    what = f"ONNX op {op.op_type} {op.name!r}" if op is not None else f"ONNX op {name!r}" if name else "the model"
    message = _first_line(str(exc)) if not isinstance(exc, SystemExit) else _last_error(log)
    return f"{where}: onnx2tf {version('onnx2tf')} failed on {what}: {type(exc).__name__}: {message}"


def _last_error(log: str) -> str:
    lines = [_ANSI.sub("", ln).strip() for ln in log.splitlines()]
    errors = [ln for ln in lines if ln.startswith("ERROR:") and "trace log" not in ln]
    return (errors[0][6:].strip() if errors else (lines[-1] if lines else "no message"))[:300]


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in _ANSI.sub("", text).splitlines() if ln.strip()]
    return (lines[0] if lines else "no message")[:300]


def _model_name(where: str, kind: str) -> str:
    """``kws`` for ``nets/kws.onnx`` and for ``nets/kws.py:make``; a Keras-safe name."""
    base = where.rsplit(":", 1)[0] if kind == "torch" else where
    stem = Path(base).stem if base.endswith((".py", ".onnx")) else base.split(".")[-1]
    return re.sub(r"\W+", "_", stem).strip("_") or kind


def _weights(proto) -> list:
    """The ONNX initializers (float ones: weights and biases), so the model counts its parameters."""
    from onnx import numpy_helper

    arrays = (numpy_helper.to_array(t) for t in proto.graph.initializer)
    return [a.astype(np.float32) for a in arrays if np.issubdtype(a.dtype, np.floating) and a.ndim >= 1]


def _as_keras(km, in_names: list[str], out_names: list[str], tf, name: str, weights: list):
    """The tf_keras model as a Keras 3 model: inputs named ``in_names`` (batch free), a dict of ``out_names``.

    A graph exported with a fixed batch (often 1) is run one sample at a
    time (``tf.map_fn``) for other batch sizes; the int8 converter traces it at
    batch 1, where it is called directly, so no loop reaches the ``.tflite``.
    """
    from edgepipe.keras_io.signature import Signature, as_keras_model

    specs = {n: tf.TensorSpec([None, *t.shape[1:]], t.dtype, n) for n, t in zip(in_names, km.inputs)}
    fixed = km.inputs[0].shape[0]

    def call_direct(xs):
        y = km(xs if len(xs) > 1 else xs[0], training=False)
        return list(y) if isinstance(y, (list, tuple)) else [y]

    def run(**feed):
        xs = [tf.cast(feed[n], t.dtype) for n, t in zip(in_names, km.inputs)]
        batch = xs[0].shape[0]
        if fixed is None or batch == fixed:
            ys = call_direct(xs)
        else:
            sig = tuple(tf.TensorSpec(o.shape[1:], o.dtype) for o in km.outputs)
            ys = tf.map_fn(lambda ts: tuple(y[0] for y in call_direct([t[None] for t in ts])), tuple(xs),
                           fn_output_signature=sig)
        return dict(zip(out_names, ys))

    sig = Signature(specs, tf.function(run, autograph=False), km, weights)
    return as_keras_model(sig, name, name)
