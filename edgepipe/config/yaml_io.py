"""Read YAML and remember where every key is, so errors can name line and column."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgepipe.errors import ConfigError, InputError


@dataclass(frozen=True)
class YamlDoc:
    """Parsed YAML plus the node tree used to locate keys in the file."""

    path: Path
    data: Any
    root: yaml.Node | None

    def where(self, keys: tuple = ()) -> str:
        """'file.yaml, line 4, column 3 (memory.ram)' for a key path."""
        node = self.root
        for key in keys:
            node = _child(node, key)
            if node is None:
                break
        dotted = ".".join(str(k) for k in keys)
        suffix = f" ({dotted})" if dotted else ""
        if node is None or not keys:
            return f"{self.path}{suffix}"
        mark = node.start_mark
        return f"{self.path}, line {mark.line + 1}, column {mark.column + 1}{suffix}"


def _child(node: yaml.Node | None, key: object) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == str(key):
                return v
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]
    return None


def load_yaml(path: str | Path) -> YamlDoc:
    """Load one YAML mapping; malformed YAML names the line and column."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "a YAML file", "no such file")
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{pos}", f"malformed YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), f"expected a mapping of keys at the top, found {type(data).__name__}")
    return YamlDoc(path, data, root)


def validation_error(exc: Any, docs: list[YamlDoc], schema_doc: str) -> ConfigError:
    """Turn pydantic's first error into 'file, line L, column C (key): problem'.

    ``docs`` are the files the data was merged from; the error is located in
    the first one that holds the offending key.
    """
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    doc = next((d for d in docs if _has_path(d.data, loc)), docs[0])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = f"unknown key {loc[-1]!r}; see {schema_doc} for the schema"
    elif "input" in err and err["type"] != "value_error" and "found" not in msg:
        msg += f", found {err['input']!r}"
    more = len(exc.errors()) - 1
    if more:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(doc.where(loc), msg)


def _has_path(data: Any, loc: tuple) -> bool:
    for key in loc:
        if isinstance(data, dict) and key in data:
            data = data[key]
        else:
            return False
    return True
