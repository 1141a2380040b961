"""The reference sections: the model's structure and where every input and tool came from."""

from __future__ import annotations

from edgepipe.report_html.data import as_dict, as_list


def model(doc: dict) -> dict | None:
    m = as_dict(doc.get("model"))
    if not m:
        return None
    ops = sorted(as_dict(m.get("ops")).items(), key=lambda kv: (-kv[1] if isinstance(kv[1], int) else 0, kv[0]))
    return {"name": m.get("keras_name"), "params": m.get("params"), "bytes": m.get("tflite_bytes"),
            "weight_bytes": m.get("weight_bytes"), "sha256": m.get("sha256"), "ops": ops,
            "tensors": [_tensor(t, "input") for t in as_list(m.get("inputs"))]
            + [_tensor(t, "output") for t in as_list(m.get("outputs"))]}


def _tensor(t, role: str) -> dict:
    t = as_dict(t)
    scale, zero = as_list(t.get("scale")), as_list(t.get("zero_point"))
    return {"role": role, "name": t.get("name") or "?", "shape": as_list(t.get("shape")), "dtype": t.get("dtype"),
            "scale": scale[0] if len(scale) == 1 else None, "zero_point": zero[0] if len(zero) == 1 else None,
            "per_channel": len(scale) > 1}


def provenance(doc: dict) -> dict:
    inputs = as_dict(doc.get("inputs"))
    data = [{"role": role, **as_dict(v)} for role, v in inputs.items() if role not in ("model", "config")]
    return {"model": as_dict(inputs.get("model")), "config": as_dict(inputs.get("config")).get("path"),
            "data": data, "tools": as_dict(doc.get("tools")), "quantization": flat(as_dict(doc.get("quantization"))),
            "profile": as_dict(as_dict(doc.get("target")).get("profile"))}


def flat(d: dict, prefix: str = "") -> dict:
    """Nested settings as dotted keys and plain values (``techniques.equalize: kept``), never a dict's repr."""
    out: dict = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, f"{name}."))
        elif isinstance(value, list):
            out[name] = ", ".join(str(v) for v in value) if all(not isinstance(v, (dict, list)) for v in value) \
                else f"{len(value)} entries (report.json)"
        else:
            out[name] = value
    return out
