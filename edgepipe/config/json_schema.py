"""JSON Schemas of a target profile file and of ``edgepipe.yaml``, generated from the pydantic models.

Editors (YAML language servers) and pre-commit hooks (check-jsonschema) read
them, so they describe the *files* as a user writes them, not the Python
objects: sizes, times, clocks and rates are strings with units ('512KiB',
'20ms', '64MHz', '4GB/s', as :mod:`edgepipe.units` reads them), a profile may
leave out any key (``name`` defaults to the file name, the rest comes from
``extends`` or the defaults), and fields the loader fills in itself
(``base_dir``, ``source``) are not keys of the file.

The schema can say less than the loader (cross-field rules, a per-channel list
as long as the model's channels): the loader stays the authority and
``edgepipe targets show FILE`` its full check. What the schema says must never
accept less: every profile the loader accepts validates.

``schemas/*.schema.json`` in the repository are this module's output,
committed for editors; ``tools/gen_docs.py`` writes them and a test holds them
current.
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

DIALECT = "https://json-schema.org/draft/2020-12/schema"
PROFILE_FILE = "target-profile.schema.json"
PROJECT_FILE = "edgepipe.schema.json"
#: The largest finite double: ``maximum`` refuses +Inf with it (see :func:`_finite`).
FLOAT_MAX = sys.float_info.max
_MARK = "x-edgepipe-unit"

# A number as edgepipe.units reads it; the exponent has at most two digits, so the value is
# always finite (the loader refuses '1e400KiB' as infinite, the schema by its pattern).
_NUM = r"\d+(\.\d+)?([eE][+-]?\d{1,2})?"

#: The loader's unit parsers: (function in edgepipe.units, schema name, its units' table there, bare number
#: allowed, what a user writes). Schema names are lower case, apart from the models' CamelCase names.
UNIT_PARSERS = (
    ("parse_size", "size", "SIZE_UNITS", True,
     "Bytes: a whole number, or a string with a unit: '512KiB', '2MiB' (x1024), '512KB', '2MB' (x1000), '4096B'."),
    ("parse_time", "time", "TIME_UNITS", False,
     "A duration with its unit: '20ms', '1.5s', '500us' (a bare 20 could be seconds or milliseconds)."),
    ("parse_frequency", "frequency", "FREQ_UNITS", False, "A clock with its unit: '240MHz', '1.5GHz'."),
    ("parse_energy", "energy", "ENERGY_UNITS", False, "Energy with its unit: '150uJ', '2mJ', '0.5J'."),
    ("parse_power", "power", "POWER_UNITS", False, "Power with its unit: '40mW', '1.2W', '850uW'."),
)
PER_CHANNEL = {
    "description": "A number, or a non-empty list with one number per input channel.",
    "anyOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}, "minItems": 1}],
}
DATA_SOURCE = {
    "description": "A path (.npz, .npy, image folder), 'package.module:function', or a mapping with "
                   "exactly one of 'path' and 'callable' (see docs/project-config.md).",
    "anyOf": [
        {"type": "string", "minLength": 1, "pattern": r"\S"},
        {"type": "object", "additionalProperties": False,
         "properties": {"path": {"type": "string", "pattern": r"\S"},
                        "callable": {"type": "string", "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"},
                        "x": {"type": "string", "pattern": r"\S"},
                        "y": {"anyOf": [{"type": "string", "pattern": r"\S"}, {"type": "null"}]},
                        "y_path": {"type": "string", "pattern": r"\S"}},
         "oneOf": [{"required": ["path"]}, {"required": ["callable"]}]},
    ],
}


def _text(units: dict, unit_required: bool, suffix: str = "") -> dict:
    names = "|".join(sorted(units, key=len, reverse=True))
    tail = rf"{suffix}\s*" if suffix else ""
    return {"type": "string", "pattern": rf"^\s*{_NUM}\s*({names}){'' if unit_required else '?'}\s*{tail}$"}


def unit_schemas() -> tuple[dict[Any, str], dict[str, dict]]:
    """(the loader's parsing function -> schema name, schema name -> schema) for every unit it reads."""
    from edgepipe import units
    from edgepipe.config import project, schema

    parsers, defs = {}, {}
    for func_name, name, table, bare_ok, text in UNIT_PARSERS:
        func, table = getattr(units, func_name, None), getattr(units, table, None)
        if func is None or table is None:
            continue  # an edgepipe.units without this unit
        parsers[func] = name
        string = _text(table, unit_required=not bare_ok)
        defs[name] = {"description": text, **({"anyOf": [{"type": "integer", "minimum": 0}, string]}
                                                if bare_ok else string)}
    parsers[schema.BytesPerSecond.__metadata__[0].func] = "rate"
    defs["rate"] = {"description": "Bytes per second: a size followed by '/s', e.g. '4GB/s', '400MB/s'.",
                    **_text(units.SIZE_UNITS, unit_required=False, suffix="/s")}
    parsers[project.PerChannel.__metadata__[0].func] = "per_channel"
    defs["per_channel"] = copy.deepcopy(PER_CHANNEL)
    return parsers, defs


class _FileSchema(GenerateJsonSchema):
    """pydantic's generator, taught what the YAML loader accepts before pydantic sees a value.

    A parser it does not know (a new unit) still gets a schema that accepts strings, so the schema
    never refuses what the loader reads; :func:`unknown_parsers` names it, and a test fails until
    it has its own entry in :data:`UNIT_PARSERS`.
    """

    parsers: dict[Any, str] = {}
    unknown: list[str] = []

    def function_before_schema(self, schema):
        func = schema["function"]["function"]
        name = self.parsers.get(func)
        if name is not None:
            return {_MARK: name}  # pydantic resolves "$ref"s it made itself; ours are put in afterwards
        self.unknown.append(getattr(func, "__qualname__", repr(func)))
        return {"anyOf": [super().function_before_schema(schema), {"type": "string"}]}

    def field_is_present(self, field) -> bool:
        # Fields excluded from dumps (base_dir, source) are filled in by the loader, not read from the file.
        return not field.get("serialization_exclude") and super().field_is_present(field)

    def field_title_should_be_set(self, schema) -> bool:
        return False  # "Int8 Only" says nothing the key does not; descriptions say what it means


def unknown_parsers() -> list[str]:
    """Parsers in the config models that the schemas know only as 'some string' (should be none)."""
    _FileSchema.unknown = []
    profile_schema(), project_schema()
    return sorted(set(_FileSchema.unknown))


def _generate(model, title: str, description: str) -> dict:
    _FileSchema.parsers, defs = unit_schemas()
    doc = model.model_json_schema(schema_generator=_FileSchema, mode="validation")
    doc.pop("title", None)
    doc.pop("description", None)  # the model's docstring speaks of Python objects; the file gets its own
    used: set[str] = set()
    _walk(doc, lambda node: _to_ref(node, used))
    doc.setdefault("$defs", {}).update({name: defs[name] for name in sorted(used)})
    _walk(doc, _finite)
    doc["$defs"]["NaN"] = {"description": "Not a number (.nan in YAML): among the values the bounds of a number "
                                          "let through, only NaN is valid here, so 'not' this refuses it.",
                           "exclusiveMaximum": -FLOAT_MAX}
    return {"$schema": DIALECT, "title": title, "description": description, **doc}


def profile_schema() -> dict:
    """The schema of one target profile file (``targets/*.yaml``)."""
    from edgepipe.config.schema import TargetProfile

    doc = _generate(TargetProfile, "edgepipe target profile",
                    "A device, its runtime and its budgets (docs/target-profiles.md). Every key is optional "
                    "in a file: 'name' defaults to the file name, the rest comes from 'extends' or the "
                    "defaults. `edgepipe targets show FILE` checks the resolved profile, cross-field "
                    "rules included.")
    doc.pop("required", None)
    doc["minProperties"] = 1  # an empty file is a mistake, not a profile of defaults
    return doc


def project_schema() -> dict:
    """The schema of ``edgepipe.yaml``."""
    from edgepipe.config.project import ProjectConfig

    doc = _generate(ProjectConfig, "edgepipe project config (edgepipe.yaml)",
                    "Which model, which data and how to read it (docs/project-config.md). Command-line "
                    "flags override any key.")
    data = doc["$defs"].get("DataConfig", {}).get("properties", {})
    for prop in data.values():
        prop.pop("anyOf", None)
        prop["anyOf"] = [{"$ref": "#/$defs/data_source"}, {"type": "null"}]
    doc["$defs"]["data_source"] = copy.deepcopy(DATA_SOURCE)
    _preprocess_rules(doc["$defs"]["Preprocess"]["properties"])
    return doc


def _preprocess_rules(props: dict) -> None:
    """The validators' rules that a schema can say: ``scale`` is not 0, every ``std`` is above 0."""
    props["scale"]["allOf"] = [{"not": {"const": 0}}]
    positive = copy.deepcopy(PER_CHANNEL)
    _walk(positive, lambda node: node.update(exclusiveMinimum=0) if node.get("type") == "number" else None)
    _walk(positive, _finite)
    props["std"] = {**{k: v for k, v in props["std"].items() if k != "$ref"}, **positive,
                    "description": props["std"].get("description", "")}


def schema_text(doc: dict) -> str:
    """The committed form: stable key order within each object, two-space indent, one final newline."""
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def undescribed(doc: dict) -> list[str]:
    """Every property (``Model.field``) that has no description: each must say what it means."""
    missing = []
    for owner, node in [("(top)", doc), *doc.get("$defs", {}).items()]:
        for key, prop in node.get("properties", {}).items():
            if not str(prop.get("description", "")).strip():
                missing.append(f"{owner}.{key}")
    return missing


def _to_ref(node: dict, used: set[str]) -> None:
    if _MARK in node:
        used.add(node[_MARK])
        node["$ref"] = f"#/$defs/{node.pop(_MARK)}"


def _finite(node: dict) -> None:
    """Numbers are finite, as the loader requires (``allow_inf_nan=False``).

    JSON has no NaN or Infinity, but YAML has (``.nan``, ``.inf``) and a YAML
    tool hands them to the validator as floats. ``maximum``/``minimum`` at the
    largest double refuse the infinities. NaN compares false with everything,
    so every bound lets it through in Python's jsonschema; ``$defs/NaN``
    (``exclusiveMaximum: -FLOAT_MAX``) holds exactly when ``x >= -FLOAT_MAX``
    is false, i.e. for NaN alone among the values the bounds let through, and
    every number node says ``not`` that. (Ajv already fails NaN on any bound.)
    """
    if node.get("type") != "number":
        return
    node.setdefault("minimum", -FLOAT_MAX)
    node.setdefault("maximum", FLOAT_MAX)
    node["not"] = {"$ref": "#/$defs/NaN"}


def _walk(node: Any, visit) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk(value, visit)
