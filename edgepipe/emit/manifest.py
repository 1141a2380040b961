"""``manifest.json``: what was built, from what, with which tools, against which budgets.

A firmware or CI build pins on it: the sha256 and size of every artifact, the
versions of the tools that made and checked them (read from package metadata,
nothing imported) and the target's budgets. It has no timestamps, so two
identical builds write byte-identical manifests.

A build writes it last, into the staged output folder, and checks it with
:func:`verify_manifest` before the folder is swapped in: a folder with a
manifest.json is a complete build whose files are exactly the ones listed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from edgepipe import __version__
from edgepipe.config.schema import TargetProfile
from edgepipe.emit.files import sha256_file, write_json
from edgepipe.errors import InternalError
from edgepipe.pipeline.report import tool_versions

SCHEMA = "edgepipe.manifest/1"


def build_manifest(out_dir: str | Path, artifacts: Iterable[str | Path], profile: TargetProfile | None = None,
                   extra: dict | None = None) -> dict:
    """The manifest as a dict; artifact paths are stored relative to ``out_dir`` when inside it."""
    root = Path(out_dir).resolve()
    files = []
    for a in sorted({Path(a).resolve() for a in artifacts}):
        files.append({"path": _relative(a, root), "bytes": a.stat().st_size, "sha256": sha256_file(a)})
    doc = {
        "schema": SCHEMA,
        "tools": {"edgepipe": __version__, **tool_versions()},
        "artifacts": files,
    }
    if profile is not None:
        doc["target"] = profile.name
        doc["runtime"] = profile.runtime.value
        doc["budgets"] = {"flash_bytes": profile.memory.flash, "ram_bytes": profile.memory.ram,
                          "latency_s": profile.latency}
    if extra:
        doc.update(extra)
    return doc


def write_manifest(out_dir: str | Path, artifacts: Iterable[str | Path], profile: TargetProfile | None = None,
                   extra: dict | None = None, name: str = "manifest.json") -> Path:
    """Write ``out_dir/manifest.json`` atomically and return its path."""
    return write_json(Path(out_dir) / name, build_manifest(out_dir, artifacts, profile, extra))


def verify_manifest(folder: str | Path, name: str = "manifest.json", ignore: Iterable[str] = ()) -> dict:
    """Check that ``folder/name`` lists exactly the files in ``folder`` with their sizes and sha256s.

    The file named by the manifest's ``report`` (``report.json``) is the one file present but not hashed.

    Returns the manifest; raises :class:`~edgepipe.errors.InternalError` (exit 3: edgepipe wrote something
    other than it recorded) naming the first difference. Names in ``ignore`` (e.g. the lock file) are skipped.
    """
    root = Path(folder)
    doc = json.loads((root / name).read_text())
    listed = {a["path"]: a for a in doc["artifacts"]}
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}
    present -= {name, *ignore, *([doc["report"]] if doc.get("report") else [])}
    if set(listed) != present:
        raise InternalError(f"{root / name}: lists {sorted(listed)} but the folder holds {sorted(present)}")
    for rel, entry in listed.items():
        path = root / rel
        if os.path.islink(path) or path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            raise InternalError(f"{root / name}: {rel} does not match its size or sha256 in the manifest")
    return doc


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
