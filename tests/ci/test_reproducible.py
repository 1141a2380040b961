"""Same model, data, config and tools: byte-identical artifacts and the same report, across processes."""

import json

import pytest

from ci.helpers import one_json_document, run_edgepipe
from edgepipe.pipeline.report import VOLATILE, stable_view


@pytest.mark.slow
def test_two_fresh_builds_in_two_processes_are_identical(project, tmp_path):
    """Each build converts from scratch (--no-cache) with TensorFlow's C++ noise around it: stdout stays JSON."""
    out = tmp_path / "out"
    runs = []
    for _ in range(2):
        res = run_edgepipe("build", "-t", "rpi4", "-c", project, "-o", out, "--no-cache", "--json")
        assert res.returncode == 0, res.stderr
        files = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
        runs.append((one_json_document(res.stdout), files))
    (doc_a, files_a), (doc_b, files_b) = runs
    assert files_a["model.tflite"] == files_b["model.tflite"]
    assert files_a["manifest.json"] == files_b["manifest.json"]
    assert stable_view(doc_a) == stable_view(doc_b)
    assert stable_view(json.loads(files_a["report.json"])) == stable_view(doc_a)
    differing = {k for k in doc_a if doc_a[k] != doc_b[k]}
    assert differing <= {"created", "timings", "latency"}, differing
    assert doc_a["inputs"]["model"]["sha256"] and doc_a["tools"]["tensorflow"] and doc_a["tools"]["ai-edge-litert"]


def test_the_volatile_fields_are_the_documented_ones():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "ci.md").read_text()
    for field in VOLATILE:
        assert f"`{field}`" in doc, field
