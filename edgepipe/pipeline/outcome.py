"""What one stage found, as a value: report sections, checks, notes, files, and the model it hands on.

Stages return a :class:`StageOutcome` instead of writing into the report; the
driver applies each one (:meth:`BuildContext.apply`) and checks the invariants
between stages. An outcome is also what the stage cache stores: :meth:`encode`
gives JSON plus byte blobs, :meth:`decode` the same outcome back, so a
replayed stage is exactly the stage that ran.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from edgepipe.checks import Check


@dataclass
class StageOutcome:
    """``tflite`` and ``settings``: the converted model and the converter settings it was made with
    (the quantize stage); ``keras_model``: the model later stages convert (the prune stage);
    ``measured``: the converted model already measured on the device's kernels (the quantize
    stage, for the verify stage). The last two are never cached."""

    sections: dict = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    tflite: bytes | None = None
    settings: object = None
    keras_model: object = field(default=None, repr=False, compare=False)
    measured: object = field(default=None, repr=False, compare=False)  # harness.device.DeviceRun, never cached

    def encode(self) -> tuple:
        """(JSON-able document, *blobs): what the stage cache stores."""
        from edgepipe.emit.files import _jsonable

        blobs = [self.tflite or b"", *self.files.values()]
        doc = {"sections": json.loads(json.dumps(self.sections, default=_jsonable)),
               "checks": [c.to_dict() for c in self.checks], "notes": list(self.notes),
               "files": list(self.files), "has_tflite": self.tflite is not None,
               "settings": _encode_settings(self.settings)}
        return (doc, *blobs)

    @classmethod
    def decode(cls, entry: tuple) -> "StageOutcome":
        doc, blobs = entry[0], entry[1:]
        return cls(sections=doc["sections"], checks=[Check(**c) for c in doc["checks"]], notes=list(doc["notes"]),
                   files=dict(zip(doc["files"], blobs[1:])), tflite=blobs[0] if doc["has_tflite"] else None,
                   settings=_decode_settings(doc["settings"]))


def _encode_settings(settings) -> dict | None:
    if settings is None:
        return None
    from dataclasses import asdict
    from enum import Enum

    return {k: v.value if isinstance(v, Enum) else v for k, v in asdict(settings).items()}


def _decode_settings(d: dict | None):
    if d is None:
        return None
    from edgepipe.config.schema import IODtype, Scheme
    from edgepipe.keras_io.convert import ConvertSettings

    enums = {"scheme": Scheme, "input_dtype": IODtype, "output_dtype": IODtype}
    return ConvertSettings(**{k: enums[k](v) if k in enums else tuple(v) if isinstance(v, list) else v
                              for k, v in d.items()})
