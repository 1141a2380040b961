"""Where ``report.html`` is written, and how, so that no folder ever holds half of a change.

- A build writes it into its staged output folder with every other artifact
  (:mod:`edgepipe.pipeline.emit_stage`): ``report.json`` and ``manifest.json``
  list it with its sha256, and the folder is swapped in whole.
- ``verify --report FILE.json`` writes it beside the JSON (``FILE.html``), each
  file atomically.
- A multi-target build writes one comparison page at the root of its targets'
  folders (``<out>/report.html``).
- ``edgepipe report PATH`` renders the page again from ``report.json``. In a
  build folder the new page goes in through the same transaction as a build:
  the folder is copied beside itself under the output lock, the page and its
  entries in ``report.json`` and ``manifest.json`` are rewritten there, the
  manifest is verified, and the copy is swapped in with one atomic rename.
  A page that is already current (same bytes, listed) is left alone.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from edgepipe.emit.files import sha256_file, write_atomic, write_json
from edgepipe.errors import InputError
from edgepipe.report_html import render_comparison, render_report

PAGE = "report.html"
REPORT = "report.json"
MANIFEST = "manifest.json"
SCHEMA_PREFIX = "edgepipe.build-report/"


def html_path_for(report_path: str | Path) -> Path:
    """``report.json`` -> ``report.html``; a report named ``x.html`` gets ``x.html.html`` (never itself)."""
    path = Path(report_path)
    page = path.with_suffix(".html")
    return page if page != path else path.with_name(path.name + ".html")


def write_page(path: str | Path, doc: dict) -> Path:
    """Render ``doc`` (a report) into ``path``, atomically."""
    return write_atomic(path, render_report(doc))


def write_comparison(outcomes) -> Path | None:
    """The page comparing a multi-target build's targets, at the folder that holds theirs (None if none does)."""
    parents = {Path(o.out_dir).absolute().parent for o in outcomes}
    if len(parents) != 1 or not outcomes:
        return None
    entries = [{"target": o.target, "error": o.error, "report": o.result.report.to_dict() if o.result else None,
                "href": f"{quote(Path(o.out_dir).name)}/{PAGE}" if o.result else None} for o in outcomes]
    return write_atomic(parents.pop() / PAGE, render_comparison(entries))


def rerender(path: str | Path, lock_timeout: float = 30.0) -> Path:
    """Render the page again from the report at ``path`` (a folder or a report's JSON); returns the page."""
    path = Path(path)
    if path.is_dir() and not (path / REPORT).is_file():
        return _rerender_comparison(path)
    report = path / REPORT if path.is_dir() else path
    doc = load_report(report)
    page = _render_checked(report, doc)
    if report.name == REPORT and (report.parent / MANIFEST).is_file():
        return _republish(report.parent, page, lock_timeout)
    return write_atomic(html_path_for(report), page)


def load_report(path: Path) -> dict:
    """A report edgepipe wrote, or an :class:`InputError` naming the file, what was expected and what was found."""
    expected = f"a report.json written by edgepipe build or verify (schema {SCHEMA_PREFIX}1)"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(str(path), expected, "no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(str(path), expected, f"unreadable JSON ({type(exc).__name__})") from None
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if not (isinstance(schema, str) and schema.startswith(SCHEMA_PREFIX)):
        found = f"schema {schema!r}" if isinstance(doc, dict) else f"a JSON {type(doc).__name__}"
        raise InputError(str(path), expected, found)
    return doc


def _render_checked(path: Path, doc: dict) -> str:
    """A report edgepipe cannot draw (hand-edited into another shape) is bad input, named as such."""
    from jinja2 import TemplateError

    try:
        return render_report(doc)
    except (TemplateError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InputError(str(path), "a report.json in the shape edgepipe writes",
                         f"{type(exc).__name__}: {exc}") from None


def _rerender_comparison(root: Path) -> Path:
    if not root.is_dir():
        raise InputError(str(root), "a folder or a report.json", "no such file or folder")
    subs = sorted(p for p in root.iterdir() if p.is_dir() and (p / REPORT).is_file())
    if not subs:
        raise InputError(str(root), f"a folder with {REPORT} (edgepipe build, or verify --report) or with target "
                         f"folders that hold one (several targets)", f"no {REPORT}")
    entries = [{"target": p.name, "href": f"{quote(p.name)}/{PAGE}", "report": load_report(p / REPORT)}
               for p in subs]
    return write_atomic(root / PAGE, render_comparison(entries))


def _republish(out: Path, page: str, lock_timeout: float) -> Path:
    """The build folder ``out`` with ``page`` as its report.html, swapped in whole (see the module docstring)."""
    from edgepipe.emit.manifest import verify_manifest
    from edgepipe.pipeline.emit_stage import copy_build, swapped_in
    from edgepipe.pipeline.lock import output_lock

    with output_lock(out, lock_timeout):
        if _current(out, page):
            return out / PAGE
        with swapped_in(out) as staged:
            copy_build(out, staged, leave=(PAGE,))
            write_atomic(staged / PAGE, page)
            _relist(staged, out)
            verify_manifest(staged)
    return out / PAGE


def _current(out: Path, page: str) -> bool:
    """The folder already holds exactly this page, and its manifest lists it as it is."""
    path = out / PAGE
    if not path.is_file() or path.read_bytes() != page.encode("utf-8"):
        return False
    from edgepipe.pipeline.emit_stage import listed_artifacts

    listed = {a.get("path"): a for a in listed_artifacts(out)}
    return listed.get(PAGE, {}).get("sha256") == sha256_file(path)


def _relist(staged: Path, out: Path) -> None:
    """The page's size and sha256 in report.json's artifacts and the manifest's (added when an older build lacks it)."""
    entry = {"bytes": (staged / PAGE).stat().st_size, "sha256": sha256_file(staged / PAGE)}
    report = json.loads((staged / REPORT).read_text())
    report.setdefault("artifacts", {})[PAGE] = {"path": str(out / PAGE), **entry}
    write_json(staged / REPORT, report)
    manifest = json.loads((staged / MANIFEST).read_text())
    files = [a for a in manifest.get("artifacts", []) if a.get("path") != PAGE] + [{"path": PAGE, **entry}]
    manifest["artifacts"] = sorted(files, key=lambda a: PurePosixPath(a["path"]).parts)
    write_json(staged / MANIFEST, manifest)
