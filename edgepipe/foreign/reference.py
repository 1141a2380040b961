"""The converted float model against the source framework, on the representative samples.

A converter can be wrong without a word (a transposed axis, a padding mode
it approximates). Before anything is quantized, the converted Keras model and
the source framework (ONNX Runtime for an ONNX file, PyTorch for a module)
run on the same representative samples; each output's largest absolute
difference must be within :func:`tolerance`. Beyond it the build stops with
exit 3 naming the output and the error: the int8 model would be judged
against a float reference that is not the user's model.

Channels-first outputs come back channels-last from the converter; each
output is compared in whichever of the two layouts fits its shape (the closer
one if both do), and the report says which.
"""

from __future__ import annotations

import numpy as np

from edgepipe.foreign.converted import Converted, ForeignConversionError
from edgepipe.foreign.layout import Layout, channels_last, same, to_source

#: max |converted − source| allowed per output, relative to the output's peak magnitude (at least 1)
RELATIVE_TOLERANCE = 1e-3
MAX_SAMPLES = 256
_CHUNK = 64


def tolerance(peak: float) -> float:
    """``1e-3 × max(1, max |source output|)``.

    Float32 kernels of the two frameworks differ by under 2e-6 on every model tried; a
    mistranslation (wrong axis, wrong padding) by far more.
    """
    return RELATIVE_TOLERANCE * max(1.0, float(peak))


def compare(conv: Converted, arrays: dict) -> dict:
    """Per output: max abs error, tolerance, peak and layout on (up to :data:`MAX_SAMPLES` of) ``arrays``.

    ``arrays``: model-layout input arrays by edgepipe input name (what calibration uses).
    """
    from edgepipe.keras_io.names import input_names, named_outputs

    n = len(next(iter(arrays.values())))
    idx = np.linspace(0, n - 1, min(n, MAX_SAMPLES)).round().astype(int)
    x = {k: np.asarray(v[idx], np.float32) for k, v in arrays.items()}
    source = conv.run_source([to_source(x[name], conv.layouts[name]) for name in conv.inputs])
    order = input_names(conv.model)
    got: dict[str, list] = {}
    for s in range(0, len(idx), _CHUNK):
        feed = [x[name][s:s + _CHUNK] for name in order]
        outs = named_outputs(conv.model, conv.model.predict_on_batch(feed if len(feed) > 1 else feed[0]))
        for k, v in outs.items():
            got.setdefault(k, []).append(np.asarray(v, np.float32))
    outputs = {}
    for name, ref in zip(conv.outputs, source):
        mine = np.concatenate(got[name])
        outputs[name] = _one(np.asarray(ref, np.float32), mine)
    worst = max(outputs.values(), key=lambda o: o["max_abs_error"] / o["tolerance"])
    return {"framework": conv.framework, "samples": int(len(idx)), "relative_tolerance": RELATIVE_TOLERANCE,
            "rule": "max |converted - source| <= 1e-3 x max(1, max |source|), per output",
            "outputs": outputs, "passed": all(o["passed"] for o in outputs.values()),
            "worst_ratio": round(worst["max_abs_error"] / worst["tolerance"], 6)}


def _one(ref: np.ndarray, mine: np.ndarray) -> dict:
    candidates = [same(ref.ndim)] + ([channels_last(ref.ndim)] if ref.ndim >= 3 else [])
    best: tuple[float, Layout] | None = None
    for layout in candidates:
        if tuple(ref.shape[i] for i in layout.perm) != mine.shape:
            continue
        err = float(np.max(np.abs(np.transpose(ref, layout.perm) - mine))) if ref.size else 0.0
        if best is None or err < best[0]:
            best = (err, layout)
    peak = float(np.max(np.abs(ref))) if ref.size else 0.0
    if best is None:
        return {"max_abs_error": float("inf"), "tolerance": tolerance(peak), "peak": peak, "passed": False,
                "source_shape": list(ref.shape), "converted_shape": list(mine.shape), "layout": None}
    err, layout = best
    return {"max_abs_error": err, "tolerance": tolerance(peak), "peak": peak, "passed": err <= tolerance(peak),
            "source_shape": list(ref.shape), "converted_shape": list(mine.shape), "layout": layout.to_dict()}


def check(result: dict, where: str, framework: str) -> None:
    """Raise (exit 3) naming the worst output beyond tolerance."""
    bad = {k: o for k, o in result["outputs"].items() if not o["passed"]}
    if not bad:
        return
    name, o = max(bad.items(), key=lambda kv: kv[1]["max_abs_error"] / kv[1]["tolerance"])
    if o["layout"] is None:
        raise ForeignConversionError(f"{where}: output {name!r} of the converted model has shape "
                                     f"{tuple(o['converted_shape'])}, {framework} gives {tuple(o['source_shape'])}")
    others = f" ({len(bad) - 1} other output(s) too)" if len(bad) > 1 else ""
    raise ForeignConversionError(
        f"{where}: output {name!r} of the converted float model differs from {framework} by max abs error "
        f"{o['max_abs_error']:.3g} (tolerance {o['tolerance']:.3g}) on {result['samples']} representative "
        f"samples{others}: the conversion is wrong; report it with the model to the converter")
