"""From ``report.json`` to what the page shows: plain dicts the templates draw, ``None`` for what is absent.

The report is first made plain JSON data exactly as ``report.json`` holds it
(non-finite figures as ``None``, keys as strings) and stripped of the fields
that differ between two identical builds (:data:`~edgepipe.pipeline.report.VOLATILE`:
the clock, wall times, cache use, the host latency). So the page a build writes
is byte-identical to the one ``edgepipe report`` renders again from its
``report.json``, and two identical builds write identical pages (the manifest
hashes it like any artifact).

Bars are given as fractions (0 to 1) of their chart's scale; the templates turn
them into SVG. Nothing here writes markup.
"""

from __future__ import annotations

import json
import re

from edgepipe.emit.files import finite
from edgepipe.pipeline.report import stable_view
from edgepipe.report_html import device, facts, pruning, quality
from edgepipe.report_html.data import as_dict, as_list, dig, is_number
from edgepipe.report_html.formats import short_name

#: The page itself: never listed in its own artifact table (it cannot hold its own hash).
SELF = "report.html"


def plain(doc: dict) -> dict:
    """``doc`` as ``report.json`` holds it, without the volatile fields."""
    return stable_view(json.loads(json.dumps(finite(doc), allow_nan=False)))


def report_view(doc: dict) -> dict:
    """Everything one report's page shows."""
    doc = plain(doc)
    target = as_dict(doc.get("target"))
    names = device.keras_names(doc)
    checks = [check_row(c, names) for c in as_list(doc.get("checks")) if isinstance(c, dict)]
    return {
        "kind": doc.get("kind") or "build",
        "status": doc.get("status") or "unknown",
        "exit_code": doc.get("exit_code"),
        "version": doc.get("edgepipe_version"),
        "schema": doc.get("schema"),
        "target": {"name": target.get("name") or "?", "chain": as_list(target.get("chain")),
                   "description": as_dict(target.get("profile")).get("description") or ""},
        "model_path": dig(doc, "inputs", "model", "path") or dig(doc, "model", "path"),
        "checks": checks,
        "failed": [c for c in checks if c["status"] == "fail"],
        "counts": {s: sum(c["status"] == s for c in checks) for s in ("pass", "fail", "skip")},
        "accuracy": quality.accuracy(doc),
        "attempts": quality.attempts(doc),
        "layers": quality.layers(doc),
        "memory": device.memory(doc),
        "latency": device.latency(doc),
        "npu": device.npu(doc),
        "prune": pruning.prune(doc),
        "model": facts.model(doc),
        "provenance": facts.provenance(doc),
        "artifacts": [{"name": k, **as_dict(v)} for k, v in as_dict(doc.get("artifacts")).items() if k != SELF],
        "notes": [str(n) for n in as_list(doc.get("notes"))],
    }


def check_row(c: dict, names: dict[str, str] | None = None) -> dict:
    """A check with its bar: the measured figure against the budget, on a scale that holds both.

    ``relation`` reads between the two figures: "of" a budget not to exceed, "at least" a minimum,
    "allowed" for a count that must be 0, "expected" for a value that must match.
    """
    m, b = c.get("measured"), c.get("budget")
    row = {"name": str(c.get("name")), "status": c.get("status") or "skip", "measured": m, "budget": b,
           "unit": c.get("unit") or "", "detail": readable(str(c.get("detail") or ""), names or {}),
           "source": c.get("source") or "", "bar": None, "relation": "expected", "percent": None}
    if is_number(m) and is_number(b):
        failed = row["status"] == "fail"
        at_least = (m > b and not failed) or (m < b and failed)
        row["relation"] = "at least" if at_least else "of" if b else "allowed"
        row["percent"] = 100.0 * m / b if b and not at_least else None
        scale = max(m, b)
        if scale > 0:
            row["bar"] = {"fill": m / scale, "marker": b / scale}
    return row


_TENSOR = re.compile(r"'([^'\s]*;[^'\s]*)'")


def readable(detail: str, names: dict[str, str]) -> str:
    """A check's sentence with fused TFLite tensor names ('a/b;c/d;...') given as their Keras layer."""
    return _TENSOR.sub(lambda m: f"'{names.get(m.group(1)) or short_name(m.group(1))}'", detail)
