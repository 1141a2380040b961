"""Several targets on one page: every check side by side, a column per target, each linking to its own page.

A target that stopped on bad input has no report: its column says why. Checks
are the union of every target's, in the order they first appear; a check a
target does not run (``tflm_arena`` on a LiteRT board) is an empty cell.
"""

from __future__ import annotations

from edgepipe.report_html.data import as_dict, as_list, dig
from edgepipe.report_html.view import check_row, plain

FIGURES = (("runtime", ("target", "profile", "runtime"), ""), ("model file", ("model", "tflite_bytes"), "bytes"),
           ("top-1, quantized", ("accuracy", "quantized", "top1"), "%"),
           ("latency (device estimate)", ("latency", "target", "seconds"), "s"))


def comparison_view(entries: list[dict]) -> dict:
    reports = [plain(e["report"]) if isinstance(e.get("report"), dict) else None for e in entries]
    targets = [_target(e, r) for e, r in zip(entries, reports)]
    names: list[str] = []
    for r in reports:
        for c in as_list((r or {}).get("checks")):
            if isinstance(c, dict) and str(c.get("name")) not in names:
                names.append(str(c.get("name")))
    rows = [{"name": n, "cells": [_cell(r, n) for r in reports]} for n in names]
    figures = [{"label": label, "unit": unit, "by_target": [dig(r, *path) if r else None for r in reports]}
               for label, path, unit in FIGURES]
    worst = max((t["exit_code"] for t in targets), default=0)
    return {"targets": targets, "rows": rows, "figures": figures, "exit_code": worst,
            "status": {0: "passed", 1: "failed"}.get(worst, "error"),
            "version": next((r.get("edgepipe_version") for r in reports if r), None)}


def _target(entry: dict, report: dict | None) -> dict:
    if report is None:
        return {"name": str(entry.get("target")), "href": None, "status": "error", "exit_code": 2,
                "error": str(entry.get("error") or "no report")}
    code = report.get("exit_code") if isinstance(report.get("exit_code"), int) else 1
    return {"name": str(entry.get("target")), "href": entry.get("href"), "status": report.get("status") or "failed",
            "exit_code": code, "error": None,
            "description": as_dict(dig(report, "target", "profile")).get("description") or ""}


def _cell(report: dict | None, name: str) -> dict | None:
    for c in as_list((report or {}).get("checks")):
        if isinstance(c, dict) and str(c.get("name")) == name:
            return check_row(c)
    return None
