"""The device sections: what the RAM figure is made of, where the time goes, what runs on the NPU.

Each says where its figure comes from (a measured TFLM arena, Vela's estimate,
the lifetime planner, the cost model), because a budget met by an estimate is
a weaker promise than one met by a measurement.
"""

from __future__ import annotations

from edgepipe.report_html.data import as_dict, as_list, dig, fraction, is_number
from edgepipe.report_html.formats import short_name

#: Ops drawn in the latency chart; the rest are summed in one line.
MAX_OPS = 40


def memory(doc: dict) -> dict | None:
    plan, tflm, vela = (as_dict(doc.get(k)) for k in ("memory", "tflm", "vela"))
    if not (plan or tflm or vela):
        return None
    ram = next((c for c in as_list(doc.get("checks")) if isinstance(c, dict) and c.get("name") == "ram"), {})
    if tflm.get("arena"):
        parts, source = _tflm_parts(tflm, ram), "TFLite Micro arena, measured on the host by bisection"
    elif vela:
        parts, source = [("SRAM (Vela)", vela.get("sram_bytes"))], "Vela's SRAM estimate"
    else:
        parts = [("activations", plan.get("peak_activation_bytes")), ("persistent state", plan.get("persistent_bytes"))]
        source = "tensor-lifetime planner (an estimate)"
    budget = dig(doc, "target", "profile", "memory", "ram")
    return {"source": ram.get("source") or source, "what": source, "budget": budget,
            "segments": _segments(parts), "total": sum(v for _, v in parts if is_number(v)),
            "plan": plan or None, "arena": as_dict(tflm.get("arena")) or None,
            "arena_with_margin": tflm.get("arena_bytes_with_margin"), "vela": vela or None,
            "largest": {"name": plan.get("largest_tensor"), "bytes": plan.get("largest_tensor_bytes")}
            if plan.get("largest_tensor") else None,
            "persistent": [p for p in as_list(plan.get("persistent")) if isinstance(p, dict)]}


def _tflm_parts(tflm: dict, ram: dict) -> list[tuple[str, float]]:
    arena = as_dict(tflm.get("arena")).get("bytes")
    with_margin = tflm.get("arena_bytes_with_margin")
    parts = [("arena (measured)", arena)]
    if is_number(with_margin) and is_number(arena):
        parts.append(("margin", with_margin - arena))
        if is_number(ram.get("measured")) and ram["measured"] > with_margin:
            parts.append(("I/O buffers", ram["measured"] - with_margin))
    return parts


def _segments(parts: list[tuple[str, float]]) -> list[dict]:
    """What the figure is made of, as one stacked bar: each part's start and width as fractions of the total.

    (The figure against its budget is the ``ram`` check's bar.)
    """
    values = [(label, v) for label, v in parts if is_number(v) and v > 0]
    total = sum(v for _, v in values)
    out, start = [], 0.0
    for i, (label, v) in enumerate(values):
        out.append({"label": label, "bytes": v, "start": start, "width": fraction(v, total), "index": i})
        start += fraction(v, total)
    return out


def latency(doc: dict) -> dict | None:
    est = as_dict(dig(doc, "latency", "target"))
    if not est:
        return None
    rows = _op_rows(as_list(est.get("ops")), keras_names(doc))
    longest = max((r["seconds"] for r in rows), default=0)
    for r in rows:
        r["bar"] = fraction(r["seconds"], longest)
    shown = sorted(rows, key=lambda r: -(r["seconds"] or 0))[:MAX_OPS] if len(rows) > MAX_OPS else rows
    kept = {id(r) for r in shown}
    rest = [r for r in rows if id(r) not in kept]
    return {"seconds": est.get("seconds"), "source": est.get("source") or "", "runtime": est.get("runtime"),
            "budget": dig(doc, "target", "profile", "latency"), "detail": est.get("detail") or "",
            "assumptions": as_dict(est.get("assumptions")), "rows": shown, "sorted": len(rows) > MAX_OPS,
            "rest": {"count": len(rest), "seconds": sum(r["seconds"] or 0 for r in rest)} if rest else None}


def _op_rows(ops: list, names: dict[str, str]) -> list[dict]:
    """One row per op; consecutive ops of one kind from one layer (Vela lowers a softmax into dozens) as one."""
    rows: list[dict] = []
    for o in (o for o in ops if isinstance(o, dict)):
        label = names.get(o.get("name")) or short_name(o.get("name"))
        seconds = o["seconds"] if is_number(o.get("seconds")) else 0.0
        last = rows[-1] if rows else None
        if last and (last["op"], last["label"], last["bound"]) == (o.get("op") or "?", label, o.get("bound") or ""):
            last["count"] += 1
            last["seconds"] += seconds
            continue
        rows.append({"index": o.get("index"), "op": o.get("op") or "?", "label": label, "seconds": seconds,
                     "bound": o.get("bound") or "", "count": 1})
    return rows


def keras_names(doc: dict) -> dict[str, str]:
    """TFLite output tensor name -> the Keras layer that made it (with the layers fused into it)."""
    out = {}
    for row in as_list(dig(doc, "layer_errors", "layers")):
        if isinstance(row, dict) and row.get("tensor") and row.get("layer"):
            fused = [str(f) for f in as_list(row.get("fused"))]
            out[row["tensor"]] = str(row["layer"]) + (f" ({' + '.join(fused)})" if fused else "")
    return out


def npu(doc: dict) -> dict | None:
    vela = as_dict(doc.get("vela"))
    if not vela:
        return None
    n_npu, n_cpu = vela.get("npu_ops") or 0, vela.get("cpu_ops") or 0
    total = (n_npu + n_cpu) if is_number(n_npu) and is_number(n_cpu) else 0
    return {"npu_ops": n_npu, "cpu_ops": n_cpu, "npu_share": fraction(n_npu, total),
            "fallbacks": [str(f) for f in as_list(vela.get("cpu_fallbacks"))],
            "float_ops": [str(f) for f in as_list(vela.get("float_cpu_ops"))],
            "figures": [(label, vela.get(key), unit) for label, key, unit in (
                ("SRAM", "sram_bytes", "bytes"), ("flash (weights)", "flash_bytes", "bytes"),
                ("compiled model", "output_bytes", "bytes"), ("inference time (Vela)", "inference_time_s", "s"),
                ("cycles", "cycles", ""), ("MACs", "macs", ""), ("NPU clock", "core_clock_hz", "Hz"))
                if vela.get(key) is not None],
            "config": [(k, vela.get(k)) for k in ("accelerator_config", "system_config", "memory_mode",
                                                   "vela_version") if vela.get(k)]}
