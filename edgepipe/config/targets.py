"""Find, load and resolve target profiles.

Profiles come from three places, later ones shadowing earlier ones by name:
the built-in profiles shipped in the wheel, a ``targets/`` folder in the
current project, and explicit paths (``--target path/to/board.yaml``).
``extends`` merges the parent's keys under the child's (deeply, one mapping
at a time); cycles are refused with the chain that forms them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgepipe.config.schema import TargetProfile
from edgepipe.config.yaml_io import YamlDoc, load_yaml, validation_error
from edgepipe.errors import ConfigError, UnknownNameError
from edgepipe.resources import builtin_dir


@dataclass(frozen=True)
class ResolvedTarget:
    """A validated profile plus, for each dotted key, the profile that set it."""

    profile: TargetProfile
    path: Path
    origin: dict[str, str] = field(default_factory=dict)
    chain: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.profile.name


class TargetRegistry:
    """Profiles known by name; ``get`` resolves inheritance and validates."""

    def __init__(self, search_dirs: list[Path] | None = None):
        dirs = [builtin_dir("targets")]
        if search_dirs is None:
            search_dirs = [Path.cwd() / "targets"]
        dirs += [d for d in search_dirs if d.is_dir()]
        self._paths: dict[str, Path] = {}
        for d in dirs:
            for p in sorted(d.glob("*.yaml")) + sorted(d.glob("*.yml")):
                self._paths[p.stem] = p

    def names(self, include_abstract: bool = False) -> list[str]:
        """Known profile names; names starting with '_' are bases, hidden by default."""
        return sorted(n for n in self._paths if include_abstract or not n.startswith("_"))

    def path(self, name: str) -> Path:
        return self._paths[name]

    def get(self, name_or_path: str) -> ResolvedTarget:
        """Resolve a profile by name, or by a path to a YAML file."""
        p = Path(name_or_path)
        if p.suffix in (".yaml", ".yml") and (p.exists() or "/" in name_or_path):
            doc = load_yaml(p)
            self._paths.setdefault(p.stem, p)
        else:
            if name_or_path not in self._paths:
                raise UnknownNameError("target", name_or_path, self.names())
            doc = load_yaml(self._paths[name_or_path])
        return self._resolve(doc)

    def _resolve(self, doc: YamlDoc) -> ResolvedTarget:
        docs = self._chain(doc)
        merged: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for d in reversed(docs):  # base first, child last
            _deep_merge(merged, d.data, origin, d.path.stem)
        merged["name"] = doc.data.get("name", doc.path.stem)
        merged["extends"] = doc.data.get("extends")
        try:
            profile = TargetProfile.model_validate(merged)
        except ValidationError as exc:
            raise validation_error(exc, docs, "docs/target-profiles.md") from None
        chain = tuple(d.path.stem for d in docs)
        return ResolvedTarget(profile, doc.path, origin, chain)

    def _chain(self, doc: YamlDoc) -> list[YamlDoc]:
        """[child, parent, grandparent, ...]; refuses cycles and unknown parents."""
        chain = [doc]
        seen = [doc.path.stem]
        _not_empty(doc)
        while (parent := chain[-1].data.get("extends")) is not None:
            if not isinstance(parent, str):
                raise ConfigError(chain[-1].where(("extends",)), f"expected a profile name, found {parent!r}")
            if parent in seen:
                cycle = " -> ".join(seen + [parent])
                raise ConfigError(chain[-1].where(("extends",)), f"'extends' cycle: {cycle}")
            if parent not in self._paths:
                where = chain[-1].where(("extends",))
                raise ConfigError(where, str(UnknownNameError("parent profile", parent, self.names(True))))
            seen.append(parent)
            chain.append(_not_empty(load_yaml(self._paths[parent])))
        return chain


def _not_empty(doc: YamlDoc) -> YamlDoc:
    """An empty file is a mistake (a wrong path, a truncated copy), not a profile of defaults."""
    if not doc.data:
        raise ConfigError(str(doc.path), "expected a target profile (keys such as runtime, memory, extends), "
                          "found an empty file", "see docs/target-profiles.md for the schema")
    return doc


def _deep_merge(dst: dict, src: dict, origin: dict, who: str, prefix: str = "") -> None:
    for key, value in src.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _deep_merge(dst[key], value, origin, who, dotted + ".")
        else:
            dst[key] = copy.deepcopy(value)
            origin[dotted] = who
            if isinstance(value, dict):
                for sub in _leaf_keys(value, dotted + "."):
                    origin[sub] = who


def _leaf_keys(d: dict, prefix: str) -> list[str]:
    out = []
    for k, v in d.items():
        out += _leaf_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return out
