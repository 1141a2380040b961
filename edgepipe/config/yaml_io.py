"""Read YAML and remember where every key is, so errors can name line and column."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgepipe.errors import ConfigError, InputError

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists a config file may have (a profile needs 3)."""
MAX_NODES = 100_000
"""Most values a config file may expand to, aliases counted each time they are used."""


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
    """Load one YAML mapping; every problem names the file, and the line and column where there is one.

    Refused: bytes that are not UTF-8, nesting deeper than :data:`MAX_DEPTH`,
    more than :data:`MAX_NODES` values once aliases are expanded, and a key
    given twice in one mapping (YAML itself would silently keep the last).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "a YAML file", "no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}", f"expected UTF-8 text, found byte 0x{raw[exc.start]:02x} "
                          f"at offset {exc.start}", "save the file as UTF-8") from None
    loader = None
    try:
        loader = _Loader(text)
        root = loader.get_single_node()
        _check_size(root, path)
        data = loader.construct_document(root) if root is not None else None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise ConfigError(f"{path}, line {line}", f"expected printable text, found character #x{exc.character:04x}",
                          "remove the control character") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"{path}{pos}", f"malformed YAML: {problem}") from None
    except _TooDeep as exc:
        raise ConfigError(f"{path}, line {exc.mark.line + 1}, column {exc.mark.column + 1}",
                          f"expected at most {MAX_DEPTH} levels of nesting, found more") from None
    except _DuplicateKey as exc:
        raise ConfigError(f"{path}, line {exc.second.line + 1}, column {exc.second.column + 1}",
                          f"expected each key once per mapping, found {exc.key!r} again "
                          f"(first on line {exc.first.line + 1})", "remove one of the two") from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), f"expected a mapping of keys at the top, found {type(data).__name__}")
    return YamlDoc(path, data, root)


class _TooDeep(Exception):
    def __init__(self, mark: yaml.error.Mark):
        self.mark = mark


class _DuplicateKey(Exception):
    def __init__(self, key: str, first: yaml.error.Mark, second: yaml.error.Mark):
        self.key, self.first, self.second = key, first, second


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer bounds the nesting and refuses duplicate keys (with both lines)."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, yaml.error.Mark] = {}
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if key.value in seen:
                        raise _DuplicateKey(key.value, seen[key.value], key.start_mark)
                    seen[key.value] = key.start_mark
        return node


def _check_size(root: yaml.Node | None, path: Path) -> None:
    """Refuse alias bombs: the count of values with every alias expanded, without expanding them."""
    sizes: dict[int, int] = {}
    stack = [(root, False)] if root is not None else []
    while stack:  # post-order, iterative: the depth is bounded already, but the count is not
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        kids = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else \
            node.value if isinstance(node, yaml.SequenceNode) else []
        if done or not kids:
            sizes[id(node)] = min(1 + sum(sizes[id(k)] for k in kids), MAX_NODES + 1)
        else:
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in sizes)
    if root is not None and sizes[id(root)] > MAX_NODES:
        raise ConfigError(str(path), f"expected at most {MAX_NODES} values with aliases expanded, found more",
                          "write the values out, or use fewer nested aliases")


def validation_error(exc: Any, docs: list[YamlDoc], schema_doc: str) -> ConfigError:
    """Turn pydantic's first error into 'file, line L, column C (key): problem'.

    ``docs`` are the files the data was merged from; the error is located in
    the first one that holds the offending key.
    """
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    doc = next((d for d in docs if _has_path(d.data, loc)), docs[0])
    msg = err["msg"].removeprefix("Value error, ")
    if msg.startswith("Input should be "):
        msg = "expected " + msg.removeprefix("Input should be ")
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
