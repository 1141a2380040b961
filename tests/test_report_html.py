"""report.html: written with every build, verify and multi-target build, self-contained, drawn by a real browser.

The browser tests open the page of a real build (the session's tiny digits
model for rpi4) in headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright over the DevTools protocol; Playwright never downloads a browser
here) at a desktop and a phone width, and check what a person would: the
screenshot is a page and not a blank, every budget of the report is on it,
nothing went wrong in the console and no request left the file.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgepipe.cli import cli
from edgepipe.emit.manifest import verify_manifest
from edgepipe.report_html import render_comparison, render_report
from edgepipe.report_html.formats import value
from ep_helpers import write_project

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORTS = {"desktop": (1280, 900), "phone": (390, 844)}


def _report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


@pytest.fixture
def build_copy(tiny_build, tmp_path) -> Path:
    """A private copy of the session's build folder, to change."""
    out = tmp_path / "out"
    shutil.copytree(Path(tiny_build.artifacts["report.json"]).parent, out,
                    ignore=shutil.ignore_patterns(".edgepipe.lock"))
    return out


# ---------------------------------------------------------------- written with the build, listed, reproducible

def test_a_build_writes_the_page_and_lists_it_like_any_artifact(tiny_build):
    out = Path(tiny_build.artifacts["report.json"]).parent
    page = out / "report.html"
    manifest = verify_manifest(out)
    listed = {a["path"]: a for a in manifest["artifacts"]}
    assert listed["report.html"]["sha256"] == hashlib.sha256(page.read_bytes()).hexdigest()
    assert _report(out)["artifacts"]["report.html"]["sha256"] == listed["report.html"]["sha256"]
    assert tiny_build.artifacts["report.html"] == page


def test_the_page_holds_no_volatile_field_so_rendering_again_gives_the_same_bytes(tiny_build, build_copy):
    doc = _report(build_copy)
    assert render_report(doc) == (build_copy / "report.html").read_text()
    doc["created"], doc["timings"] = "1999-01-01T00:00:00Z", {"load": 123.0}
    doc["cache"], doc["latency"]["host"] = {"dir": "/elsewhere"}, {"median_s": 9.0}
    assert render_report(doc) == (build_copy / "report.html").read_text()
    assert render_report(tiny_build.report.to_dict()) == render_report(doc), "in memory (inf) and on disk (null)"


def test_edgepipe_report_leaves_a_current_page_and_its_manifest_alone(build_copy):
    before = {p.name: p.read_bytes() for p in build_copy.iterdir()}
    res = CliRunner().invoke(cli, ["report", str(build_copy)])
    assert res.exit_code == 0, res.output
    assert res.output == f"wrote {build_copy / 'report.html'}\n"
    assert {p.name: p.read_bytes() for p in build_copy.iterdir()} == before


def test_edgepipe_report_swaps_a_changed_page_in_with_the_manifest(build_copy):
    good = (build_copy / "report.html").read_bytes()
    (build_copy / "report.html").write_text("<p>stale page of an older edgepipe</p>")
    res = CliRunner().invoke(cli, ["report", str(build_copy), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == {"status": "ok", "exit_code": 0, "html": str(build_copy / "report.html")}
    assert (build_copy / "report.html").read_bytes() == good
    verify_manifest(build_copy)
    assert [p.name for p in build_copy.parent.iterdir() if ".edgepipe-" in p.name] == []


def test_an_older_build_without_a_page_gets_one_listed_in_its_manifest(build_copy):
    good = (build_copy / "report.html").read_bytes()
    (build_copy / "report.html").unlink()
    for name, key in (("manifest.json", "artifacts"), ("report.json", "artifacts")):
        doc = json.loads((build_copy / name).read_text())
        doc[key] = [a for a in doc[key] if a["path"] != "report.html"] if isinstance(doc[key], list) else {
            k: a for k, a in doc[key].items() if k != "report.html"}
        (build_copy / name).write_text(json.dumps(doc))
    res = CliRunner().invoke(cli, ["report", str(build_copy)])
    assert res.exit_code == 0, res.output
    assert (build_copy / "report.html").read_bytes() == good
    assert "report.html" in {a["path"] for a in verify_manifest(build_copy)["artifacts"]}
    assert _report(build_copy)["artifacts"]["report.html"]["bytes"] == len(good)


def _bad(tmp_path: Path, kind: str) -> Path:
    if kind == "missing":
        return tmp_path / "nowhere"
    if kind == "empty-folder":
        return tmp_path
    text = {"not-json": "{oops", "a-list": "[1, 2]", "other-schema": '{"schema": "someone-else/1"}',
            "odd-shape": '{"schema": "edgepipe.build-report/1", "checks": "all fine", "accuracy": [],'
                         ' "latency": {"target": {"ops": [7]}}}'}[kind]
    (tmp_path / "report.json").write_text(text)
    return tmp_path


@pytest.mark.parametrize("kind,found", [("missing", "no such file"), ("empty-folder", "no report.json"),
                                        ("not-json", "unreadable JSON"), ("a-list", "a JSON list"),
                                        ("other-schema", "schema 'someone-else/1'")])
def test_edgepipe_report_on_bad_input_is_exit_2_in_one_line(tmp_path, kind, found):
    path = _bad(tmp_path, kind)
    res = CliRunner().invoke(cli, ["report", str(path)])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and found in lines[0], lines
    assert not (tmp_path / "report.html").exists()


def test_a_report_of_odd_shape_still_renders_what_it_can(tmp_path):
    res = CliRunner().invoke(cli, ["report", str(_bad(tmp_path, "odd-shape"))])
    assert res.exit_code == 0, res.output
    assert "<h2>Latency per op</h2>" in (tmp_path / "report.html").read_text()


# ---------------------------------------------------------------- the page itself

def test_the_page_is_self_contained_and_its_stylesheet_is_the_one_the_policy_allows(tiny_build):
    page = Path(tiny_build.artifacts["report.html"]).read_text()
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src 'none'" in policy and "script-src 'none'" in policy
    css = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy
    for foreign in ("<script", " src=", "url(", "@import", "http://", "https://", " style="):
        assert foreign not in page, foreign


def _with_sections(doc: dict) -> dict:
    """The tiny build's report plus the sections an rpi4 build has not: Vela, pruning, TFLM."""
    doc = json.loads(json.dumps(doc))
    doc["vela"] = {"npu_ops": 30, "cpu_ops": 2, "sram_bytes": 4096, "cycles": 1000,
                   "cpu_fallbacks": ["TANH (t1): Vela: the op has no NPU support <&>"]}
    doc["tflm"] = {"arena": {"bytes": 4896, "method": "tflm:bisection", "probes": 5}, "arena_bytes_with_margin": 6416}
    doc["prune"] = {"enabled": True, "method": "channel", "layers": [
        {"name": "conv", "class_name": "Conv2D", "channels_out": {"before": 8, "after": 4},
         "params": {"before": 80, "after": 40}}],
        "accuracy": {"float_original": 95.0, "int8_pruned": 93.5}}
    return doc


def test_sections_absent_from_a_report_are_not_shown(tiny_build):
    doc = tiny_build.report.to_dict()
    plain = render_report(doc)
    for section in ("npu", "prune"):
        assert f'id="{section}"' not in plain and f'href="#{section}"' not in plain
    full = render_report(_with_sections(doc))
    for section in ("npu", "prune", "accuracy", "layers", "memory", "latency"):
        assert f'id="{section}"' in full and f'href="#{section}"' in full
    assert "TFLite Micro arena" in full and "TANH (t1): Vela: the op has no NPU support &lt;&amp;&gt;" in full
    bare = render_report({"schema": "edgepipe.build-report/1", "status": "unverified", "exit_code": 0, "checks": [
        {"name": "accuracy", "status": "skip", "detail": "no eval data: accuracy was not verified"}]})
    assert 'id="checks"' in bare and 'id="accuracy"' not in bare and 'id="memory"' not in bare
    assert 'class="verdict unverified"' in bare and "not verified: no eval data" in bare


def test_keras_layer_names_stand_for_fused_tensor_names(tiny_build):
    page = Path(tiny_build.artifacts["report.html"]).read_text()
    layers = [r["layer"] for r in tiny_build.report.sections["layer_errors"]["layers"]]
    assert all(f'data-layer="{name}"' in page for name in layers)
    latency = re.search(r'<section id="latency">(.*?)</section>', page, re.S).group(1)
    labels = re.findall(r'<span class="muted small mono">(.*?)</span>', latency)
    assert labels and not any(";" in label for label in labels), labels
    assert any(label.split(" (")[0] in layers for label in labels), "ops are named by their Keras layer"
    details = [c["detail"] for c in tiny_build.report.to_dict()["checks"] if c["name"] == "latency"]
    assert ";" in details[0] and details[0] not in page, "the check's sentence too, where it quotes tensors"


# ---------------------------------------------------------------- verify and several targets

def test_verify_writes_the_page_beside_its_report_and_never_onto_the_model(tiny_build, data_npz, tmp_path):
    model = tmp_path / "m.html"
    shutil.copy(tiny_build.artifacts["model.tflite"], model)
    args = ["verify", str(model), "-t", "rpi4", "-d", str(data_npz), "--x", "x_eval", "--y", "y_eval"]
    res = CliRunner().invoke(cli, [*args, "--report", str(tmp_path / "checks.json")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "checks.html").read_text()
    assert 'data-check="accuracy"' in page and "edgepipe verify" in page
    before = model.read_bytes()
    res = CliRunner().invoke(cli, [*args, "--report", str(tmp_path / "m.json")])
    assert res.exit_code == 2 and "the model itself" in res.output
    assert model.read_bytes() == before and not (tmp_path / "m.json").exists()


def test_verify_with_a_page_imports_neither_tensorflow_nor_matplotlib(tiny_build, data_npz, tmp_path):
    probe = (f"import sys\nfrom click.testing import CliRunner\nfrom edgepipe.cli import cli\n"
             f"res = CliRunner().invoke(cli, ['verify', {str(tiny_build.artifacts['model.tflite'])!r}, '-t', 'rpi4', "
             f"'-d', {str(data_npz)!r}, '--x', 'x_eval', '--y', 'y_eval', '--report', {str(tmp_path / 'v.json')!r}])\n"
             f"assert res.exit_code == 0, res.output\n"
             f"print('HEAVY:' + ','.join(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "HEAVY:\n" in out.stdout and (tmp_path / "v.html").is_file()


def test_a_multi_target_build_writes_one_page_comparing_them(tiny_model_path, data_npz, tmp_path):
    """rpi4 builds; coral-edgetpu (int8-only) refuses the project's float16 scheme: its column says why."""
    cfg = write_project(tmp_path, tiny_model_path, data_npz, quantization={"scheme": "float16"})
    res = CliRunner().invoke(cli, ["build", "-t", "rpi4", "-t", "coral-edgetpu", "-c", str(cfg),
                                   "-o", str(tmp_path / "out"), "-j", "1"])
    assert res.exit_code == 2, res.output
    page = (tmp_path / "out" / "report.html").read_text()
    assert '<a href="rpi4/report.html">rpi4</a>' in page and (tmp_path / "out" / "rpi4" / "report.html").is_file()
    assert 'data-target="coral-edgetpu"' in page and "int8-only" in page
    (tmp_path / "out" / "report.html").unlink()
    again = CliRunner().invoke(cli, ["report", str(tmp_path / "out")])
    assert again.exit_code == 0, again.output
    assert 'href="rpi4/report.html"' in (tmp_path / "out" / "report.html").read_text()


# ---------------------------------------------------------------- headless Chromium

@dataclass
class Visit:
    """What the browser saw: the page, console errors, failed scripts, every request it made."""

    page: object
    url: str
    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def foreign_requests(self) -> list[str]:
        return [u for u in self.requests if u != self.url]


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the Python package playwright (test extra) is not installed")
    if not CHROMIUM.exists():
        _unavailable(f"no {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


def _unavailable(why: str):
    if os.environ.get("CI"):
        pytest.fail(f"headless Chromium is required in CI: {why}")
    pytest.skip(why)


@pytest.fixture
def visit(browser):
    contexts = []

    def open_page(path: Path, viewport: str = "desktop") -> Visit:
        width, height = VIEWPORTS[viewport]
        context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
        contexts.append(context)
        page = context.new_page()
        seen = Visit(page, path.resolve().as_uri())
        page.on("console", lambda m: seen.console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: seen.console.append(f"pageerror: {e}"))
        page.on("request", lambda r: seen.requests.append(r.url))
        context.route(re.compile(r"^(?!file:).*"), lambda route: route.abort())  # nothing leaves, whatever happens
        page.goto(seen.url, wait_until="load")
        return seen

    yield open_page
    for context in contexts:
        context.close()


def _screenshot_is_a_page(png: bytes, width: int) -> None:
    from PIL import Image, ImageStat

    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.width == width and 1200 <= image.height <= 40000, image.size
    gray = image.convert("L")
    inked = sum(gray.histogram()[:200]) / (image.width * image.height)
    assert inked > 0.01, f"only {inked:.2%} of the page is drawn on"
    assert ImageStat.Stat(gray).stddev[0] > 10
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 32, "text, bars and chips in several colours"


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_chromium_draws_every_budget_with_no_error_and_no_request(tiny_build, visit, viewport):
    path = Path(tiny_build.artifacts["report.html"])
    seen = visit(path, viewport)
    page, report = seen.page, _report(path.parent)
    assert seen.console == [] and seen.foreign_requests() == []
    assert page.get_attribute("#verdict", "data-status") == report["status"]
    budgets = [c for c in report["checks"] if c["budget"] is not None]
    assert len(budgets) >= 5
    for c in budgets:
        row = page.locator(f'.check[data-check="{c["name"]}"]')
        assert row.is_visible(), c["name"]
        assert row.locator(".budget").inner_text() == value(c["budget"], c["unit"])
        assert row.locator(".measured").inner_text() == value(c["measured"], c["unit"])
        assert row.locator(".source").count() == (1 if c["source"] else 0)
    width = VIEWPORTS[viewport][0]
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "no sideways scrolling on a phone"
    assert page.locator("svg.cm rect.cell").count() >= 10, "the confusion matrix is drawn"
    _screenshot_is_a_page(page.screenshot(full_page=True), width)


def test_chromium_draws_the_comparison_page(tiny_build, visit, tmp_path):
    doc = tiny_build.report.to_dict()
    entries = [{"target": "rpi4", "href": "rpi4/report.html", "report": doc},
               {"target": "board", "href": "board/report.html", "report": _with_sections(doc)},
               {"target": "broken", "error": "board.yaml, line 3: expected a size"}]
    (tmp_path / "report.html").write_text(render_comparison(entries))
    seen = visit(tmp_path / "report.html", "phone")
    assert seen.console == [] and seen.foreign_requests() == []
    assert seen.page.locator('tr[data-check="flash"] .budget').count() == 2
    assert "expected a size" in seen.page.locator("#verdict").inner_text()


def test_the_browser_harness_does_see_a_page_that_reaches_out(tiny_build, visit, tmp_path):
    """Control: the checks above can fail. A policy-blocked image is a console error; without the policy,
    the request itself is recorded (and aborted)."""
    page = Path(tiny_build.artifacts["report.html"]).read_text()
    leaky = page.replace("<main>", '<main><img src="https://example.invalid/x.png" alt="">', 1)
    (tmp_path / "blocked.html").write_text(leaky)
    seen = visit(tmp_path / "blocked.html")
    assert any("Content Security Policy" in m for m in seen.console), seen.console
    no_policy = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", leaky)
    (tmp_path / "open.html").write_text(no_policy)
    seen = visit(tmp_path / "open.html")
    assert seen.foreign_requests() == ["https://example.invalid/x.png"]


@pytest.mark.slow
def test_the_wheel_carries_every_template(tmp_path):
    import zipfile

    repo = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(repo)],
                   check=True, capture_output=True)
    names = zipfile.ZipFile(next(tmp_path.glob("edgepipe-*.whl"))).namelist()
    templates = sorted((repo / "edgepipe" / "templates").rglob("*.j2"))
    assert len(templates) >= 5
    for path in templates:
        assert path.relative_to(repo).as_posix() in names
