"""Write the artifacts: each file whole (temp file + rename), the report last.

Microcontroller and NPU targets (and any build with ``emit: [c]``) also get
firmware sources: the model as a C array, an op resolver listing exactly the
model's ops, and the arena size. ``manifest.json`` lists the sha256 of every
artifact with tool versions and budgets.
"""

from __future__ import annotations

from pathlib import Path

from edgepipe.emit.files import sha256_file, write_atomic
from edgepipe.pipeline.context import BuildContext


def run(ctx: BuildContext) -> None:
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    add(ctx, "model.tflite", write_atomic(ctx.out_dir / "model.tflite", ctx.tflite_bytes))
    for name, data in ctx.pending.items():
        add(ctx, name, write_atomic(ctx.out_dir / name, data))
    if ctx.judgement is not None and ctx.judgement.firmware is not None:
        _c_sources(ctx)
    _manifest(ctx)
    report_path = ctx.out_dir / "report.json"
    ctx.artifacts["report.json"] = report_path
    ctx.report.save(report_path)


def add(ctx: BuildContext, name: str, path: Path) -> None:
    """Record an artifact written by any stage (path, bytes, sha256) in the report."""
    ctx.artifacts[name] = path
    ctx.report.artifacts[name] = {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _c_sources(ctx: BuildContext) -> None:
    """The model the backend says the firmware embeds (Vela's for Ethos-U), with its measured arena."""
    from edgepipe.emit.c_sources import emit_c_sources
    from edgepipe.tflite.model import parse_tflite

    fw = ctx.judgement.firmware
    ops = sorted(parse_tflite(fw.model, "firmware model").op_counts)
    for path in emit_c_sources(fw.model, ctx.out_dir, ops, fw.arena_bytes):
        add(ctx, path.name, path)


def _manifest(ctx: BuildContext) -> None:
    from edgepipe.emit.manifest import write_manifest

    path = write_manifest(ctx.out_dir, list(ctx.artifacts.values()), ctx.profile,
                          extra={"status": "passed" if ctx.report.passed else "failed"})
    ctx.artifacts["manifest.json"] = path
