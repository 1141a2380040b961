"""A file-based cache of stage outputs, keyed by a hash of everything they depend on.

Any stage can use it::

    tflite = ctx.cache.get_or_compute(
        "vela", {"tflite": ctx.tflite.sha256, "config": profile.ethos_u.to_dict()},
        lambda: compile_with_vela(ctx.tflite_bytes))

The key is the SHA-256 of the stage name, the given ``key_parts`` (anything
JSON-able), edgepipe's version, a fingerprint of edgepipe's own source code
and the installed versions of the tools (TensorFlow, LiteRT, TFLM, Vela...):
a new release, an edited stage or an upgraded converter never replays a stale
entry. Values are ``bytes`` (stored as ``.bin``), NumPy arrays (``.npy``),
anything JSON-able (``.json``), or a tuple of those. Each entry is a folder
``<dir>/<stage>/<key>/``, written under a temporary name and renamed into
place, so concurrent builds share the cache safely. Reading an entry touches
its mtime; when the cache grows over its size bound the least recently used
entries are deleted.

An entry is verified before it is replayed: ``entry.json`` records the stage
and a SHA-256 over the entry's key, that record and every stored item (see
:func:`_entry_digest`). An entry whose record, key or content does not match
(truncated, swapped, moved to another key's folder, a flipped byte, unreadable)
is deleted and counts as a miss: the stage runs again. A damaged cache never
ships a model it did not compute for these inputs, and never fails a build.

Settings: ``--cache-dir`` / ``EDGEPIPE_CACHE_DIR`` (default
``$XDG_CACHE_HOME/edgepipe`` or ``~/.cache/edgepipe``), ``--cache-size`` /
``EDGEPIPE_CACHE_SIZE`` (default 1 GiB), ``--no-cache`` / ``EDGEPIPE_NO_CACHE=1``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgepipe import __version__

DEFAULT_SIZE = 1 << 30
_META = "entry.json"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class CacheSettings:
    """Where the cache lives, how large it may grow, and whether it is used at all."""

    dir: Path
    max_bytes: int = DEFAULT_SIZE
    enabled: bool = True

    @classmethod
    def resolve(cls, cache_dir: str | Path | None = None, max_size: str | int | None = None,
                enabled: bool | None = None) -> "CacheSettings":
        """Explicit values win over the environment, which wins over the defaults."""
        from edgepipe.errors import ConfigError
        from edgepipe.units import UnitError, parse_size

        env = os.environ
        if cache_dir is None:
            cache_dir = env.get("EDGEPIPE_CACHE_DIR") or Path(
                env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgepipe"
        size = max_size if max_size is not None else env.get("EDGEPIPE_CACHE_SIZE")
        if enabled is None:
            enabled = env.get("EDGEPIPE_NO_CACHE", "").lower() in ("", "0", "false", "no")
        try:
            max_bytes = DEFAULT_SIZE if size is None else parse_size(size)
        except UnitError as exc:
            raise ConfigError("cache size (--cache-size, EDGEPIPE_CACHE_SIZE)", str(exc)) from None
        return cls(Path(cache_dir).expanduser(), max_bytes, enabled)


@dataclass
class StageCache:
    """Get, put and evict entries; ``stats`` records each stage's hits and misses."""

    settings: CacheSettings
    stats: dict[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def key(self, stage: str, key_parts: Any) -> str:
        return digest({"stage": stage, "parts": key_parts, "edgepipe": __version__,
                       "code": code_fingerprint(), "tools": _tools()})

    def get(self, stage: str, key_parts: Any) -> Any:
        """The stored value, or :data:`MISSING`."""
        if not self.enabled:
            return MISSING
        key = self.key(stage, key_parts)
        entry = self._entry(stage, key)
        if not entry.is_dir():
            return MISSING
        try:
            value = _read(entry, stage, key)
            now = time.time()
            os.utime(entry, (now, now))
        except Exception:  # noqa: BLE001 - evicted meanwhile, or damaged in any way: recompute, never fail
            shutil.rmtree(entry, ignore_errors=True)
            return MISSING
        return value

    def put(self, stage: str, key_parts: Any, value: Any) -> None:
        if not self.enabled:
            return
        key = self.key(stage, key_parts)
        entry = self._entry(stage, key)
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=entry.parent))
        try:
            _write(tmp, stage, key, value)
            os.rename(tmp, entry)
        except OSError:  # another process stored the same entry first
            shutil.rmtree(tmp, ignore_errors=True)
        self.evict()

    def get_or_compute(self, stage: str, key_parts: Any, compute: Callable[[], Any]) -> Any:
        """The cached value for ``(stage, key_parts)``, or ``compute()`` stored for next time."""
        value = self.get(stage, key_parts)
        if value is not MISSING:
            self.stats[stage] = "hit"
            return value
        value = compute()
        self.put(stage, key_parts, value)
        self.stats[stage] = "miss" if self.enabled else "off"
        return value

    def entries(self) -> list[tuple[Path, int, float]]:
        """(folder, bytes, mtime) of every entry, least recently used first."""
        root = self.settings.dir
        out = []
        for entry in root.glob("*/*") if root.is_dir() else ():
            if entry.name.startswith(".tmp-") or not entry.is_dir():
                continue
            try:
                size = sum(f.stat().st_size for f in entry.iterdir())
                out.append((entry, size, entry.stat().st_mtime))
            except OSError:
                continue
        return sorted(out, key=lambda e: e[2])

    def evict(self) -> int:
        """Delete least recently used entries until the cache fits its bound; returns how many."""
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        removed = 0
        for entry, size, _ in entries:
            if total <= self.settings.max_bytes:
                break
            shutil.rmtree(entry, ignore_errors=True)
            total -= size
            removed += 1
        return removed

    def clear(self) -> int:
        entries = self.entries()
        for entry, _, _ in entries:
            shutil.rmtree(entry, ignore_errors=True)
        return len(entries)

    def _entry(self, stage: str, key: str) -> Path:
        return self.settings.dir / stage / key


def open_cache(cache: "StageCache | CacheSettings | bool | None" = None) -> StageCache:
    """A cache from an instance, settings, ``False`` (off) or ``None``/``True`` (the environment's)."""
    if isinstance(cache, StageCache):
        return cache
    if isinstance(cache, CacheSettings):
        return StageCache(cache)
    return StageCache(CacheSettings.resolve(enabled=False if cache is False else None))


def digest(parts: Any) -> str:
    """SHA-256 of a canonical JSON rendering of ``parts``."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def array_digest(*arrays: np.ndarray | None) -> str:
    """SHA-256 of arrays' dtypes, shapes and bytes (``None`` entries count too)."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none;")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 over edgepipe's own source files, so an edited stage never replays old output.

    Read once per process: the code that runs is what this process imported, so its keys must not
    change when a file is edited while it runs (a long fit would then miss its own entries and
    ship a rebuilt candidate instead of the one it measured); each new process reads it anew."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@lru_cache(maxsize=1)
def _tools() -> dict:
    from edgepipe.pipeline.report import tool_versions

    return tool_versions()


class DamagedEntry(ValueError):
    """An entry whose record, key or content does not match what was written (never replayed)."""


def _write(folder: Path, stage: str, key: str, value: Any) -> None:
    items = value if isinstance(value, tuple) else (value,)
    kinds, blobs = [], []
    for i, item in enumerate(items):
        kind, raw = _encode(item)
        (folder / f"{i}.{kind}").write_bytes(raw)
        kinds.append(kind)
        blobs.append(raw)
    meta = {"stage": stage, "items": kinds, "tuple": isinstance(value, tuple), "edgepipe": __version__}
    meta["sha256"] = _entry_digest(key, meta, blobs)
    (folder / _META).write_text(json.dumps(meta, separators=(",", ":")))


def _read(folder: Path, stage: str, key: str) -> Any:
    """The entry's value, after checking it was written for ``(stage, key)`` with exactly this content."""
    meta = json.loads((folder / _META).read_text())
    if not isinstance(meta, dict) or meta.get("stage") != stage:
        raise DamagedEntry(f"{folder}: not an entry of stage {stage!r}")
    kinds = meta["items"]
    blobs = [(folder / f"{i}.{kind}").read_bytes() for i, kind in enumerate(kinds)]
    if meta.get("sha256") != _entry_digest(key, meta, blobs):
        raise DamagedEntry(f"{folder}: content or key does not match its recorded SHA-256")
    items = tuple(_decode(kind, raw) for kind, raw in zip(kinds, blobs))
    return items if meta["tuple"] else items[0]


def _entry_digest(key: str, meta: dict, blobs: list[bytes]) -> str:
    """SHA-256 over the entry's key, its record (stage, item kinds ...; not the digest itself) and every item.

    The key is not stored: it is the folder's name, so an entry moved or copied into another key's
    folder no longer matches its digest.
    """
    h = hashlib.sha256(key.encode())
    h.update(digest({k: v for k, v in meta.items() if k != "sha256"}).encode())
    for raw in blobs:
        h.update(len(raw).to_bytes(8, "little"))
        h.update(raw)
    return h.hexdigest()


def _encode(item: Any) -> tuple[str, bytes]:
    if isinstance(item, (bytes, bytearray)):
        return "bin", bytes(item)
    if isinstance(item, np.ndarray):
        buf = io.BytesIO()
        np.save(buf, item, allow_pickle=False)
        return "npy", buf.getvalue()
    return "json", json.dumps(item).encode()


def _decode(kind: str, raw: bytes) -> Any:
    if kind == "bin":
        return raw
    if kind == "npy":
        return np.load(io.BytesIO(raw), allow_pickle=False)
    if kind == "json":
        return json.loads(raw)
    raise ValueError(f"unknown cache item kind {kind!r}")
