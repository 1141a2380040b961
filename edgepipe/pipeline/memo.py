"""Replay whole stages from the cache: what a stage did to the build, recorded once.

The stages that need the float Keras model (prune, quantize, verify) are the
slow ones and the only ones that import TensorFlow. The driver runs each
inside :meth:`StageMemo.run`, which records the stage's *effects* — report
sections it added or changed, checks and notes it appended, artifacts it
wrote, and the context fields it set (``tflite_bytes``, ``settings``) — and
stores them in the :mod:`~edgepipe.pipeline.cache` under a key of everything
the stage can depend on (see :func:`stage_key`).

Replay is all or nothing: when every such stage has an entry, all are
replayed and the Keras model is never loaded (so TensorFlow is never
imported); otherwise every one runs, with the model loaded first. A stage
that changes something the memo cannot record is simply not stored (and the
report's ``cache`` section says why), so a new stage can never replay wrong.
A new context field becomes replayable by adding a codec to :data:`CODECS`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from edgepipe.checks import Check
from edgepipe.emit.files import _jsonable, sha256_file, write_atomic
from edgepipe.pipeline.cache import MISSING, StageCache, array_digest
from edgepipe.tflite.model import parse_tflite

#: Profile fields the model stages never read (names, budgets, budget-only settings): changing
#: one re-runs the checks, not the stages; a profile that only differs in them shares entries.
CHECK_ONLY_FIELDS = ("name", "extends", "description", "sources", "memory", "latency", "tflm", "cost_model")
#: Project fields replaced by content hashes (model, data) or read only after the model stages.
PROJECT_NOT_KEYED = {"model", "data", "output", "target", "emit"}


def _settings_codec():
    """ConvertSettings <-> JSON, every field (enums by value, tuples as lists)."""
    from dataclasses import asdict
    from enum import Enum

    def encode(settings) -> dict:
        return {k: v.value if isinstance(v, Enum) else v for k, v in asdict(settings).items()}

    def decode(d: dict):
        from edgepipe.config.schema import IODtype, Scheme
        from edgepipe.keras_io.convert import ConvertSettings

        enums = {"scheme": Scheme, "input_dtype": IODtype, "output_dtype": IODtype}
        return ConvertSettings(**{k: enums[k](v) if k in enums else tuple(v) if isinstance(v, list) else v
                                  for k, v in d.items()})

    return encode, decode


#: Context fields a stage may set, with (encode to JSON-able or bytes, decode) for each.
CODECS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "tflite_bytes": (bytes, bytes),
    "settings": _settings_codec(),
}
#: Context fields a stage may set that need no replay (derived, or only used by these stages).
DERIVED = {"tflite", "model"}


def stage_key(ctx) -> dict:
    """Everything the model stages read: content hashes, config, profile minus budgets, settings."""
    inputs = ctx.inputs
    data = {role: array_digest(split.x, split.y) for role in ("representative", "eval", "train")
            if (split := getattr(inputs, role)) is not None}
    return {
        "model": inputs.model_sha256,
        "data": data,
        "project": ctx.project.model_dump(mode="json", exclude=PROJECT_NOT_KEYED),
        "profile": {k: v for k, v in ctx.profile.to_dict().items() if k not in CHECK_ONLY_FIELDS},
        "settings": ctx.settings.to_dict(),
    }


class StageMemo:
    """Runs or replays the stages of one build that need the float model."""

    def __init__(self, ctx, cache: StageCache, stages: tuple[str, ...]):
        self.ctx, self.cache, self.stages = ctx, cache, stages
        self.key = stage_key(ctx) if cache.enabled else None
        self.status: dict[str, str] = {}
        self.replay = self._lookup()
        if self.replay is not None:
            ctx.progress.note(f"inputs unchanged: {', '.join(stages)} replayed from the cache ({cache.settings.dir})")

    def _lookup(self) -> dict[str, tuple] | None:
        if not self.cache.enabled:
            return None
        found = {}
        for stage in self.stages:
            value = self.cache.get(stage, self.key)
            if value is MISSING:
                return None
            found[stage] = value
        return found

    def run(self, name: str, fn: Callable[[Any], None]) -> None:
        """Replay ``name`` from the cache, or load the model if needed, run it, and record it."""
        ctx = self.ctx
        if self.replay is not None:
            _apply(ctx, self.replay[name])
            self.status[name] = "hit"
            return
        if ctx.model is None:
            ctx.model = ctx.inputs.load_model()
        if not self.cache.enabled:
            fn(ctx)
            self.status[name] = "off"
            return
        before = _State(ctx)
        fn(ctx)
        try:
            effects, why = before.effects(ctx)
        except (TypeError, ValueError) as exc:  # a value the report could not write either
            effects, why = None, f"{type(exc).__name__}: {exc}"
        if effects is None:
            self.status[name] = f"not cached: {why}"
            return
        self.cache.put(name, self.key, effects)
        self.status[name] = "miss"

    def summary(self) -> dict:
        """For the report's ``cache`` section: each cached step's hit, miss or why not."""
        return {"dir": str(self.cache.settings.dir), "stages": {**self.cache.stats, **self.status}}


class _State:
    """The parts of a context a stage may change, as they were before it ran."""

    def __init__(self, ctx):
        rep = ctx.report
        self.fields = dict(vars(ctx))
        self.sections = {k: _dumps(v) for k, v in rep.sections.items()}
        self.checks = list(rep.checks)
        self.notes = list(rep.notes)
        self.report_artifacts = _dumps(rep.artifacts)
        self.artifacts = dict(ctx.artifacts)
        self.pending = dict(getattr(ctx, "pending", {}))
        self.fixed = _dumps([rep.inputs, rep.target])

    def effects(self, ctx) -> tuple[tuple | None, str]:
        """(doc, *blobs) that :func:`_apply` replays, or (None, why it cannot be recorded)."""
        rep = ctx.report
        if _dumps([rep.inputs, rep.target]) != self.fixed:
            return None, "changed report inputs or target"
        if rep.checks[: len(self.checks)] != self.checks or rep.notes[: len(self.notes)] != self.notes:
            return None, "changed earlier checks or notes"
        if set(self.sections) - set(rep.sections):
            return None, "removed a report section"
        blobs: list[bytes] = []
        fields = {}
        for name, value in vars(ctx).items():
            if name in DERIVED or value is self.fields.get(name):
                continue
            if name not in CODECS:
                return None, f"set context field {name!r} (add a codec to memo.CODECS)"
            encoded = CODECS[name][0](value)
            if isinstance(encoded, bytes):
                blobs.append(encoded)
                encoded = {"blob": len(blobs)}
            fields[name] = encoded
        files = {}
        for name, path in ctx.artifacts.items():
            if self.artifacts.get(name) == path:
                continue
            try:
                rel = Path(path).resolve().relative_to(Path(ctx.out_dir).resolve()).as_posix()
            except ValueError:
                return None, f"wrote artifact {name!r} outside the output folder"
            blobs.append(Path(path).read_bytes())
            files[name] = {"path": rel, "blob": len(blobs)}
        pending = {}
        for name, data in getattr(ctx, "pending", {}).items():
            if self.pending.get(name) is not data:
                blobs.append(bytes(data))
                pending[name] = len(blobs)
        doc = {
            "pending": pending,
            "sections": {k: _plain(v) for k, v in rep.sections.items() if self.sections.get(k) != _dumps(v)},
            "checks": [c.to_dict() for c in rep.checks[len(self.checks):]],
            "notes": rep.notes[len(self.notes):],
            "fields": fields,
            "files": files,
            "report_artifacts": [k for k, v in rep.artifacts.items()
                                 if _dumps(v) != _dumps(json.loads(self.report_artifacts).get(k))],
        }
        return (doc, *blobs), ""


def _apply(ctx, effects: tuple) -> None:
    """Replay recorded effects on ``ctx`` (artifact files are rewritten into this output folder)."""
    doc, blobs = effects[0], effects[1:]
    rep = ctx.report
    rep.sections.update(doc["sections"])
    rep.checks += [Check(**c) for c in doc["checks"]]
    rep.notes += doc["notes"]
    for name, value in doc["fields"].items():
        raw = blobs[value["blob"] - 1] if isinstance(value, dict) and "blob" in value else value
        setattr(ctx, name, CODECS[name][1](raw))
    if "tflite_bytes" in doc["fields"]:
        ctx.tflite = parse_tflite(ctx.tflite_bytes, "converted model")
    for name, blob in doc["pending"].items():
        ctx.pending[name] = blobs[blob - 1]
    for name, f in doc["files"].items():
        path = write_atomic(Path(ctx.out_dir) / f["path"], blobs[f["blob"] - 1])
        ctx.artifacts[name] = path
        if name in doc["report_artifacts"]:
            rep.artifacts[name] = {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _dumps(value: Any) -> str:
    """Canonical text, to tell whether a stage changed a value (never fails: ``repr`` as a last resort)."""
    return json.dumps(value, sort_keys=True, default=_comparable)


def _comparable(value: Any) -> Any:
    try:
        return _jsonable(value)
    except TypeError:
        return repr(value)


def _plain(value: Any) -> Any:
    """The value as its JSON form (key order kept), as the report will write it."""
    return json.loads(json.dumps(value, default=_jsonable))
