"""The build report: every figure, every check, and what produced them.

A result object that owns its persistence (``save``); the CLI renders it,
the library never prints. ``report.json`` is versioned by ``schema``;
the fields in :data:`VOLATILE` are the only ones that change between two
identical builds (:func:`stable_view` drops them, for comparisons).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from edgepipe import __version__
from edgepipe.checks import Check, verdict_of
from edgepipe.emit.files import write_json
from edgepipe.errors import EXIT_CHECK_FAILED, EXIT_OK

SCHEMA = "edgepipe.build-report/1"
TOOLS = ("tensorflow", "keras", "ai-edge-litert", "ai-edge-quantizer", "numpy", "tflite-micro", "ethos-u-vela")
#: Wall times, the clock, host measurements and cache use: everything else is reproducible.
VOLATILE = ("created", "timings", "cache", "latency.host")


def stable_view(doc: dict) -> dict:
    """A report dict without the :data:`VOLATILE` fields."""
    out = {k: v for k, v in doc.items() if k not in ("created", "timings", "cache")}
    if isinstance(out.get("latency"), dict):
        out["latency"] = {k: v for k, v in out["latency"].items() if k != "host"}
    return out


def tool_versions() -> dict[str, str | None]:
    """Installed versions, read from package metadata (no imports)."""
    out = {}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


class ReportVerdict:
    """``passed`` and ``exit_code`` for a result object that holds a ``report``."""

    report: "BuildReport"

    @property
    def passed(self) -> bool:
        return self.report.passed

    @property
    def exit_code(self) -> int:
        return self.report.exit_code


@dataclass
class BuildReport:
    target: dict
    inputs: dict = field(default_factory=dict)
    sections: dict = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    artifacts: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    kind: str = "build"

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.passed else EXIT_CHECK_FAILED

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "kind": self.kind,
            "status": verdict_of(self.checks),
            "exit_code": self.exit_code,
            "edgepipe_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "target": self.target,
            "inputs": self.inputs,
            "tools": tool_versions(),
            **self.sections,
            "checks": [c.to_dict() for c in self.checks],
            "artifacts": self.artifacts,
            "notes": self.notes,
            "timings": self.timings,
        }

    @classmethod
    def from_dict(cls, doc: dict) -> "BuildReport":
        """A report read back from its ``report.json`` (every section kept; checks as :class:`Check`)."""
        own = {"schema", "status", "exit_code", "edgepipe_version", "created", "tools", "target", "inputs",
               "checks", "artifacts", "notes", "timings", "kind"}
        return cls(doc["target"], doc.get("inputs", {}), {k: v for k, v in doc.items() if k not in own},
                   [Check(**c) for c in doc.get("checks", [])], doc.get("artifacts", {}), doc.get("timings", {}),
                   doc.get("notes", []), doc.get("kind", "build"))

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())
