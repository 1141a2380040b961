"""Write the artifacts as one transaction: a complete new folder swapped in for the old.

Microcontroller and NPU targets (and any build with ``emit: [c]``) also get
firmware sources: the model as a C array, an op resolver listing exactly the
model's ops, and the arena size. ``manifest.json`` lists the sha256 of every
artifact with tool versions and budgets, and names ``report.json`` (not hashed:
it holds the clock, and the manifest of two identical builds is byte-identical).

The scheme, and why. Renaming artifacts into ``<out>`` one by one leaves a
mix of two builds when the process dies between renames. Instead every file
is written into a fresh sibling folder ``<out>.edgepipe-tmp-XXXXXXXX``
(``mkdtemp``: created with ``O_EXCL``, mode 0700 until swapped in): the
artifacts (``report.html`` last of them), then ``report.json``, then ``manifest.json`` last, which is then
read back and verified (every file listed, every sha256 and size matching,
nothing unlisted but ``report.json``). Only then is that folder swapped with ``<out>`` by one
``renameat2(RENAME_EXCHANGE)`` (:func:`edgepipe.pipeline.lock.replace_folder`)
and the old build, now in the sibling, removed. The swap is a single atomic
step, so a SIGKILL at any moment leaves ``<out>`` holding exactly the previous
complete build or the new complete build, and no temporary file inside it;
a killed build's sibling is removed by the next build into the same ``<out>``
(under the output lock, so never one a live build is using). A "current"
symlink would also swap atomically, but it makes ``<out>`` a link, which
tools that copy or archive the folder, and the no-symlink rule of the lock,
handle worse; a folder swap keeps ``<out>`` a plain folder. Paths in the
report and in ``BuildResult.artifacts`` name the final locations in ``<out>``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from edgepipe.emit.files import output_error, sha256_file, write_atomic
from edgepipe.errors import InputError
from edgepipe.pipeline.context import BuildContext

STAGING = ".edgepipe-tmp-"


def run(ctx: BuildContext) -> None:
    out = Path(ctx.out_dir)
    with swapped_in(out) as staged:
        write_all(ctx, staged, out)


@contextmanager
def swapped_in(out: Path):
    """A fresh staging folder beside ``out``, filled by the block and then swapped in as ``out`` whole.

    Any error (or Ctrl-C) removes the staging folder and leaves ``out`` as it was;
    errors name ``out``'s paths, not the staging folder's. The one way edgepipe
    publishes a folder: a build's emit stage and ``edgepipe report``.
    """
    remove_stale_staging(out)
    try:
        staged = Path(tempfile.mkdtemp(prefix=out.absolute().name + STAGING, dir=out.absolute().parent))
    except OSError as exc:
        raise output_error(out.absolute().parent, exc) from exc
    try:
        with _named_as(out, staged):
            yield staged
            os.chmod(staged, 0o777 & ~_umask())
            from edgepipe.pipeline.lock import replace_folder

            replace_folder(out, staged)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def write_all(ctx: BuildContext, staged: Path, out: Path) -> None:
    """Every artifact into ``staged``, ``report.json`` next, ``manifest.json`` last, then verified."""
    add(ctx, "model.tflite", write_atomic(staged / "model.tflite", ctx.tflite_bytes), out)
    for name, data in ctx.pending.items():
        add(ctx, name, write_atomic(staged / name, data), out)
    if ctx.judgement is not None and ctx.judgement.firmware is not None:
        _c_sources(ctx, staged, out)
    _report_html(ctx, staged, out)
    ctx.report.save(staged / "report.json")
    ctx.artifacts["report.json"] = out / "report.json"
    _manifest(ctx, staged, out)


def add(ctx: BuildContext, name: str, path: Path, out: Path | None = None) -> None:
    """Record an artifact (path, bytes, sha256) in the report; ``path`` is where it is now, ``out`` its folder."""
    final = Path(out) / path.name if out is not None else path
    ctx.artifacts[name] = final
    ctx.report.artifacts[name] = {"path": str(final), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def listed_artifacts(folder: Path) -> list[dict]:
    """The artifact entries of ``folder``'s manifest; a manifest that is not edgepipe's is bad input."""
    try:
        files = json.loads((folder / "manifest.json").read_text()).get("artifacts")
        if isinstance(files, list) and all(isinstance(a, dict) and isinstance(a.get("path"), str) for a in files):
            return files
    except (OSError, ValueError, AttributeError):
        pass
    raise InputError(str(folder / "manifest.json"), "a manifest.json written by edgepipe build", "another document",
                     "rebuild into this folder")


def copy_build(source: Path, staged: Path, leave: tuple[str, ...] = ()) -> None:
    """A build's files (those its manifest lists but ``leave``, the manifest and the report) into ``staged``."""
    names = [a["path"] for a in listed_artifacts(source) if a["path"] not in leave] + ["manifest.json", "report.json"]
    for name in names:
        src, dest = source / name, staged / name
        if Path(name).is_absolute() or ".." in Path(name).parts or src.is_symlink() or not src.is_file():
            raise InputError(str(src), "a file of the build, as its manifest lists", "no such regular file",
                             "rebuild into this folder")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)


def remove_stale_staging(out: Path) -> None:
    """Remove the staging siblings of builds into ``out`` that were killed (the caller holds the output lock)."""
    parent, name = out.absolute().parent, out.absolute().name
    pattern = re.compile(re.escape(name) + r"\.edgepipe-(tmp|old)-[A-Za-z0-9_]+$")
    try:
        entries = os.listdir(parent)
    except OSError:
        return
    for entry in entries:
        path = parent / entry
        if pattern.match(entry) and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)


def _c_sources(ctx: BuildContext, staged: Path, out: Path) -> None:
    """The model the backend says the firmware embeds (Vela's for Ethos-U), with its measured arena."""
    from edgepipe.emit.c_sources import emit_c_sources
    from edgepipe.tflite.model import parse_tflite

    fw = ctx.judgement.firmware
    ops = sorted(parse_tflite(fw.model, "firmware model").op_counts)
    for path in emit_c_sources(fw.model, staged, ops, fw.arena_bytes):
        add(ctx, path.name, path, out)


def _report_html(ctx: BuildContext, staged: Path, out: Path) -> None:
    """The report as a page, hashed and listed like any artifact (it holds none of the report's volatile fields)."""
    from edgepipe.report_html.publish import write_page

    add(ctx, "report.html", write_page(staged / "report.html", ctx.report.to_dict()), out)


def _manifest(ctx: BuildContext, staged: Path, out: Path) -> None:
    from edgepipe.emit.manifest import verify_manifest, write_manifest

    # report.json is named, not hashed: it holds the clock and timings, and the manifest stays byte-identical
    # between identical builds; the report's own ``artifacts`` hold the same sha256s as the manifest.
    files = [staged / p.name for name, p in ctx.artifacts.items() if name != "report.json"]
    path = write_manifest(staged, files, ctx.profile, extra={"status": "passed" if ctx.report.passed else "failed",
                                                             "report": "report.json"})
    verify_manifest(staged)
    ctx.artifacts["manifest.json"] = out / path.name


@contextmanager
def _named_as(out: Path, staged: Path):
    """Errors name the output folder's paths, not the staging folder's (which is gone by then)."""
    try:
        yield
    except InputError as exc:
        if str(staged) not in exc.where:
            raise
        where = exc.where.replace(str(staged), str(out))
        raise InputError(where, exc.expected, exc.found, exc.fix) from exc
    except OSError as exc:
        raise output_error(out, exc) from exc


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
