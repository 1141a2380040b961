"""Ship the chosen candidate as it was measured: its trial folder, copied whole into ``--out``.

A candidate's build already wrote everything ``edgepipe build`` writes
(model, firmware sources, report, manifest) into its trial folder. Building
it again to publish it promised the same bytes only when every stage
replayed from the stage cache: fine-tuning is not bit-reproducible, so a
missed cache entry (a long-lived process, an edited source file, a cache
evicted meanwhile) shipped a different model than the one the search
measured, with other figures than ``fit.json`` gives for it. Copying the
folder makes what ships the thing that was measured.

The copy is checked against the trial's manifest (sizes and sha256s) and
swapped in at ``--out`` in one step under the output lock, with ``fit.json``
and ``pareto.svg`` inside it, so ``--out`` is never half written or mixed.
Only when the trial folder is gone or damaged (a resumed journal whose
folder was deleted) is the candidate built again, and ``fit.json`` says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from edgepipe.emit.manifest import verify_manifest
from edgepipe.errors import InternalError
from edgepipe.fit.trial import BuildRequest, TrialRecord, build_overrides
from edgepipe.pipeline.lock import LOCK_NAME
from edgepipe.pipeline.report import BuildReport

if TYPE_CHECKING:
    from edgepipe.pipeline.build import BuildResult


def measured_build(folder: Path, out_dir: Path) -> BuildResult | None:
    """The trial folder's build as it will read once copied to ``out_dir``; None when it is gone or damaged."""
    from edgepipe.pipeline.build import BuildResult

    try:
        verify_manifest(folder, ignore=(LOCK_NAME,))
        doc = json.loads((folder / "report.json").read_text())
    except (OSError, ValueError, KeyError, InternalError):
        return None
    for entry in doc.get("artifacts", {}).values():
        entry["path"] = str(out_dir / Path(entry["path"]).name)
    report = BuildReport.from_dict(doc)
    return BuildResult(report, out_dir, {name: Path(a["path"]) for name, a in report.artifacts.items()})


def publish_measured(folder: Path, build: BuildResult, out_dir: Path, beside: Callable[[Path], None]) -> None:
    """Copy the trial ``folder`` into ``out_dir`` in one swap, ``beside(staged)`` adding fit.json and the plot."""
    from edgepipe.emit.files import write_json
    from edgepipe.pipeline.emit_stage import copy_build, swapped_in
    from edgepipe.pipeline.lock import output_lock

    with output_lock(out_dir), swapped_in(out_dir) as staged:
        copy_build(folder, staged)
        doc = json.loads((staged / "report.json").read_text())
        doc["artifacts"] = build.report.artifacts  # paths into out_dir, not the trial folder
        write_json(staged / "report.json", doc)
        verify_manifest(staged, ignore=(LOCK_NAME,))  # the copy is byte for byte what was measured
        beside(staged)


def rebuild(request: BuildRequest, record: TrialRecord, out_dir: Path) -> BuildResult:
    """Build the candidate again into ``out_dir`` (its trial folder is gone): the stage cache replays what it can."""
    from edgepipe import api

    return api.build(request.target, request.config, out=out_dir,
                     overrides=build_overrides(request, record.knobs), targets_dir=request.targets_dir,
                     cache=request.cache)
