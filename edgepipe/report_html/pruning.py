"""The pruning section: each layer's channels and parameters before and after, accuracy at every stage.

Only layers that hold weights are drawn (a ReLU after a pruned convolution is
narrower too, but says nothing the convolution does not).
"""

from __future__ import annotations

from edgepipe.report_html.data import as_dict, as_list, dig, fraction, is_number

STAGES = (("float_original", "float, original"), ("float_pruned", "float, pruned"),
          ("float_pruned_recalibrated", "float, pruned, BN recalibrated"),
          ("float_pruned_reconstructed", "float, pruned, reconstructed"),
          ("float_pruned_finetuned", "float, pruned, fine-tuned"), ("int8_pruned", "int8, pruned (shipped)"))


def prune(doc: dict) -> dict | None:
    p = as_dict(doc.get("prune"))
    if not p.get("enabled"):
        return None
    layers = [r for r in as_list(p.get("layers")) if isinstance(r, dict) and _weighted(r)]
    widest = max((_before_after(r, "channels_out")[0] or 0 for r in layers), default=0)
    rows = []
    for r in layers:
        before, after = _before_after(r, "channels_out")
        p_before, p_after = _before_after(r, "params")
        rows.append({"name": str(r.get("name") or "?"), "kind": r.get("class_name") or "", "before": before,
                     "after": after, "params_before": p_before, "params_after": p_after,
                     "before_bar": fraction(before, widest), "after_bar": fraction(after, widest)})
    acc = as_dict(p.get("accuracy"))
    stages = [{"label": label, "top1": acc[key], "bar": fraction(acc[key], 100)}
              for key, label in STAGES if is_number(acc.get(key))]
    return {"method": p.get("method"), "ratio": dig(p, "settings", "ratio"), "rows": rows, "stages": stages,
            "target": as_dict(dig(p, "settings", "target")), "steps": _steps(p),
            "totals": as_dict(p.get("totals")), "channel_multiple": p.get("channel_multiple"),
            "whole": [g for g in as_list(p.get("groups")) if isinstance(g, dict) and g.get("frozen")],
            "history": [h for h in as_list(dig(p, "recovery", "history")) if isinstance(h, dict)],
            "notes": [str(n) for n in as_list(p.get("notes"))]}


def _steps(p: dict) -> list[dict]:
    """Each recovery step that was judged: kept or reverted, and its error against the unpruned model."""
    out = []
    for key, label in (("bn_recalibration", "BatchNorm re-calibration"), ("reconstruction", "least-squares refit")):
        d = as_dict(dig(p, key, "decision"))
        if d:
            out.append({"label": label, "decision": str(d.get("decision") or ""), "reason": str(d.get("reason") or ""),
                        "before": d.get("error_before"), "after": d.get("error_after")})
    return out


def _before_after(row: dict, key: str) -> tuple:
    pair = as_dict(row.get(key))
    return pair.get("before"), pair.get("after")


def _weighted(row: dict) -> bool:
    params = _before_after(row, "params")[0]
    return is_number(params) and params > 0
