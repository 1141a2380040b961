"""The accuracy sections: each level of comparison, the confusion matrix, converter attempts, per-layer error.

Levels, from the user's question down to the kernels: the float model against
the labels, the quantized model (on the device's kernels) against the labels,
the quantized model against the float one (agreement, SQNR), and the device's
runtime against the host reference kernels (LSBs, class disagreement).
"""

from __future__ import annotations

from edgepipe.report_html.data import as_dict, as_list, dig, fraction, is_number
from edgepipe.report_html.formats import decibels, number, percent

#: Above this many classes the matrix is not drawn (report.json keeps it).
MAX_DRAWN_CLASSES = 64
#: Up to this many classes each cell shows its count.
MAX_NUMBERED_CLASSES = 12


def accuracy(doc: dict) -> dict | None:
    acc = as_dict(doc.get("accuracy"))
    if not acc:
        return None
    runtime = as_dict(acc.get("runtime"))
    levels = [lvl for lvl in (
        _labels("float model vs labels", acc.get("float"), "Keras model on the host"),
        _labels("quantized model vs labels", acc.get("quantized"), runtime.get("name")),
        _baseline(as_dict(acc.get("baseline"))),
        _vs_float(acc),
        _vs_reference(as_dict(acc.get("cross_check"))),
    ) if lvl]
    return {"task": acc.get("task"), "samples": acc.get("samples"), "levels": levels,
            "drop": acc.get("drop"), "drop_unit": acc.get("drop_unit") or "",
            "confusion": confusion(acc.get("confusion_matrix")), "outputs": _outputs(acc)}


def _figure(name: str, text: str, bar: float | None = None) -> dict:
    return {"name": name, "text": text, "bar": bar}


def _labels(label: str, figures, source) -> dict | None:
    figures = as_dict(figures)
    out = []
    for key in ("top1", "top5"):
        if is_number(figures.get(key)):
            out.append(_figure(key.replace("top", "top-"), percent(figures[key]), fraction(figures[key], 100)))
    for key in ("rmse", "mae"):
        if is_number(figures.get(key)):
            out.append(_figure(key.upper(), number(figures[key])))
    return {"label": label, "source": source or "", "figures": out} if out else None


def _baseline(base: dict) -> dict | None:
    key = "top1" if "top1" in base else "rmse" if "rmse" in base else None
    if key is None:
        return None
    text = percent(base[key]) if key == "top1" else number(base[key])
    return {"label": "baseline (the float model's, given)", "source": str(base.get("source") or ""),
            "figures": [_figure("top-1" if key == "top1" else "RMSE", text,
                                fraction(base[key], 100) if key == "top1" else None)]}


def _vs_float(acc: dict) -> dict | None:
    err = as_dict(acc.get("output_error"))
    out = []
    if is_number(acc.get("agreement")):
        out.append(_figure("top-1 agreement", percent(acc["agreement"]), fraction(acc["agreement"], 100)))
    if err:
        out.append(_figure("output SQNR", decibels(err.get("sqnr_db"))))
        if is_number(err.get("cosine_mean")):
            out.append(_figure("cosine (mean)", f"{err['cosine_mean']:.5f}"))
    return {"label": "quantized vs float model", "source": "the same eval samples", "figures": out} if out else None


def _vs_reference(cross: dict) -> dict | None:
    if not cross:
        return None
    out = []
    if is_number(cross.get("max_lsb")):
        out.append(_figure("largest output difference", f"{cross['max_lsb']} LSB end to end"))
    per_op = as_dict(cross.get("per_op"))
    if is_number(per_op.get("max_lsb")):
        out.append(_figure("largest per kernel", f"{per_op['max_lsb']} LSB ({per_op.get('op') or '-'})"))
    if is_number(cross.get("top1_disagreement_pct")):
        out.append(_figure("top-1 disagreement", percent(cross["top1_disagreement_pct"])))
    source = " vs ".join(str(cross[k]) for k in ("device", "reference") if cross.get(k))
    return {"label": "device runtime vs host reference", "source": source, "figures": out} if out else None


def _outputs(acc: dict) -> list[dict]:
    """One row per output when there are several (detector heads, multi-task models)."""
    outputs = [o for o in as_list(acc.get("outputs")) if isinstance(o, dict)]
    if len(outputs) < 2:
        return []
    return [{"name": str(o.get("name") or "?"), "task": str(o.get("task") or ""), "figure": _output_figure(o),
             "sqnr": decibels(dig(o, "quantized_vs_float", "sqnr_db")),
             "max_lsb": dig(o, "device_vs_reference", "max_lsb")} for o in outputs]


def _output_figure(o: dict) -> str:
    """What an output is judged by: its labels (top-1, RMSE), else agreement with the float model."""
    if is_number(dig(o, "quantized", "top1")):
        return f"top-1 {percent(o['quantized']['top1'])}"
    if is_number(dig(o, "quantized", "rmse")):
        return f"RMSE {o['quantized']['rmse']:.4g}"
    if is_number(o.get("agreement")):
        return f"agrees {percent(o['agreement'])} (no labels)"
    return "vs float only (no labels)"


def confusion(matrix) -> dict | None:
    """Cells shaded by their share of the true class's samples (a row sums to 1)."""
    rows = as_list(matrix)
    n = len(rows)
    if n < 2 or any(not isinstance(r, list) or len(r) != n or not all(is_number(v) for v in r) for r in rows):
        return None
    if n > MAX_DRAWN_CLASSES:
        return {"n": n, "cells": [], "numbered": False, "drawn": False}
    cells = []
    for i, row in enumerate(rows):
        total = sum(row)
        for j, count in enumerate(row):
            cells.append({"row": i, "col": j, "count": count, "share": fraction(count, total), "diag": i == j})
    return {"n": n, "cells": cells, "numbered": n <= MAX_NUMBERED_CLASSES, "drawn": True}


def attempts(doc: dict) -> dict | None:
    """The converter settings accuracy-aware quantization tried, when it tried more than one."""
    qa = as_dict(doc.get("quantization_attempts"))
    tried = [a for a in as_list(qa.get("attempts")) if isinstance(a, dict)]
    if len(tried) < 2 and not as_list(qa.get("layers_at_fault")):
        return None
    rows = [{"step": a.get("step"), "change": a.get("change"), "bytes": a.get("bytes"),
             "top1": a.get("quantized_top1"), "drop": a.get("drop"), "drop_unit": a.get("drop_unit") or "",
             "passed": a.get("passed"), "chosen": i == qa.get("chosen")} for i, a in enumerate(tried)]
    return {"rows": rows, "measured_with": qa.get("measured_with"), "at_fault": as_list(qa.get("layers_at_fault"))}


def layers(doc: dict) -> dict | None:
    """Per-layer quantization error by Keras layer: cumulative and local SQNR, higher is better."""
    le = as_dict(doc.get("layer_errors"))
    if not le:
        return None
    items = [r for r in as_list(le.get("layers")) if isinstance(r, dict)]
    at_fault = {str(x) for x in as_list(le.get("at_fault"))}
    finite = [r[k] for r in items for k in ("sqnr_db", "local_sqnr_db") if is_number(r.get(k))]
    scale = max(finite) * 1.1 if finite and max(finite) > 0 else 1.0
    rows = [{"layer": str(r.get("layer") or "?"), "kind": r.get("kind") or "", "fused": as_list(r.get("fused")),
             "sqnr": r.get("sqnr_db"), "local": r.get("local_sqnr_db"),
             "sqnr_bar": _db_bar(r.get("sqnr_db"), scale), "local_bar": _db_bar(r.get("local_sqnr_db"), scale),
             "at_fault": str(r.get("layer")) in at_fault} for r in items]
    return {"rows": rows, "samples": le.get("samples"), "note": le.get("note"), "at_fault": sorted(at_fault),
            "scale_db": scale}


def _db_bar(value, scale: float) -> float:
    """An SQNR as a bar: ``None`` (exact, +∞ dB) fills it."""
    return 1.0 if value is None else fraction(value, scale)
