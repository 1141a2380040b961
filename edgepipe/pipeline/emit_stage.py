"""Write the artifacts: each file whole (temp file + rename), the report last."""

from __future__ import annotations

from edgepipe.emit.files import sha256_file, write_atomic
from edgepipe.pipeline.context import BuildContext


def run(ctx: BuildContext) -> None:
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    add(ctx, "model.tflite", write_atomic(ctx.out_dir / "model.tflite", ctx.tflite_bytes))
    report_path = ctx.out_dir / "report.json"
    ctx.artifacts["report.json"] = report_path
    ctx.report.save(report_path)


def add(ctx: BuildContext, name: str, path) -> None:
    """Record an artifact written by any stage (path, bytes, sha256) in the report."""
    ctx.artifacts[name] = path
    ctx.report.artifacts[name] = {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path)}
