"""Write what is generated from the config models: the JSON Schemas and the profile key table.

One source for three readers: ``schemas/*.schema.json`` (editors, pre-commit),
``edgepipe targets schema`` (the same documents at run time) and the key table
in ``docs/target-profiles.md``, between the ``BEGIN GENERATED`` / ``END
GENERATED`` markers (the prose around it is hand-written and kept). A field's
meaning is written once, as its ``Field(description=...)``.

    python tools/gen_docs.py            # rewrite the files
    python tools/gen_docs.py --check    # exit 1 naming each stale file (tests/test_json_schema.py runs this)

The screenshots of report.html in docs/report.md come from a multi-target build
of the bundled example, taken with headless Chromium (Playwright, the test extra)::

    edgepipe build --example digits -t esp32-s3 -t ethos-u55 -t rpi4 --prune-ratio 0.25 \
        --finetune-epochs 5 -o /tmp/ep-docs
    python tools/gen_docs.py --screenshots /tmp/ep-docs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgepipe.config.json_schema import (  # noqa: E402 - after the path set-up, for a plain checkout
    FLOAT_MAX, PROFILE_FILE, PROJECT_FILE, profile_schema, project_schema, schema_text)
from edgepipe.units import format_size  # noqa: E402

DOC = REPO / "docs" / "target-profiles.md"
BEGIN = "<!-- BEGIN GENERATED: profile keys (tools/gen_docs.py; edit the Field descriptions, not this table) -->"
END = "<!-- END GENERATED: profile keys -->"


def expected_files() -> dict[Path, str]:
    """Every generated file and the text it must hold."""
    doc = DOC.read_text()
    return {
        REPO / "schemas" / PROFILE_FILE: schema_text(profile_schema()),
        REPO / "schemas" / PROJECT_FILE: schema_text(project_schema()),
        DOC: replace_block(doc, key_table(profile_schema())),
    }


def replace_block(text: str, generated: str) -> str:
    """``text`` with the part between the markers replaced; the markers must be there, once each."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise SystemExit(f"{DOC}: expected one '{BEGIN}' line followed by one '{END}' line")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{generated}{END}{tail}"


def key_table(schema: dict) -> str:
    """A Markdown table: every key of a profile, dotted, with its type, default and description."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, prop, required in _leaves(schema, schema):
        default = "required" if required else _default(prop, schema)
        cells = (f"`{key}`", _type(prop, schema), default, _cell(prop.get("description")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _leaves(node: dict, root: dict, prefix: str = ""):
    """(dotted key, property, required) for every property; a nested mapping gives its own row, then its keys'."""
    for key, prop in node.get("properties", {}).items():
        yield prefix + key, prop, key in node.get("required", ())
        for option in prop.get("anyOf", [prop]):  # a mapping, or a mapping or null
            target = _deref(option, root)
            if target.get("type") == "object" and "properties" in target:
                yield from _leaves(target, root, f"{prefix}{key}.")


def _deref(prop: dict, root: dict) -> dict:
    ref = prop.get("$ref")
    return root["$defs"][ref.rsplit("/", 1)[1]] if ref else prop


def _type(prop: dict, root: dict) -> str:
    options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
    return " or ".join(_one_type(p, root) for p in options)


def _one_type(prop: dict, root: dict) -> str:
    name = prop.get("$ref", "").rsplit("/", 1)[-1]
    if name[:1].islower():  # a unit: size, time, frequency, rate, ... (the models' names are CamelCase)
        return name.replace("_", " ")
    prop = _deref(prop, root)
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    kind = {"integer": "int", "number": "number", "boolean": "bool", "string": "string",
            "object": "mapping", "array": "list"}.get(prop.get("type"), "any")
    if kind == "list":
        return f"list of {_one_type(prop.get('items', {}), root)}s"
    return kind + _range(prop)


def _range(prop: dict) -> str:
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    high = prop.get("maximum")
    low = None if low == -FLOAT_MAX else low
    high = None if high == FLOAT_MAX else high
    if low is not None and high is not None:
        return f" {low:g}–{high:g}"
    if low is not None:
        return f" {'>' if 'exclusiveMinimum' in prop else '≥'} {low:g}"
    return ""


def _default(prop: dict, root: dict) -> str:
    if "default" not in prop or isinstance(prop["default"], (dict, list)):
        return ""
    value = prop["default"]
    if value is None:
        return "none"
    if prop.get("$ref", "").endswith("/size"):
        return format_size(value).replace(" ", "")
    return f"`{json.dumps(value)}`"


def _cell(text: str | None) -> str:
    return " ".join(str(text or "").split()).replace("|", "\\|")


#: (file in docs/img, page under the build root, viewport width, height, device pixel ratio, whole page)
SHOTS = (("report-desktop.png", "esp32-s3/report.html", 1280, 1500, 1, False),
         ("report-phone.png", "esp32-s3/report.html", 390, 844, 2, False),
         ("report-npu-phone.png", "ethos-u55/report.html#npu", 390, 844, 2, False),
         ("report-compare.png", "report.html", 1280, 900, 1, True))


def screenshots(root: Path, chromium: str = "/usr/bin/chromium") -> list[Path]:
    """Pictures of the pages under ``root`` (a multi-target build of the example) into docs/img."""
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium)
        for name, page_path, width, height, scale, whole in SHOTS:
            page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=scale)
            file, _, anchor = page_path.partition("#")
            page.goto((root / file).resolve().as_uri() + (f"#{anchor}" if anchor else ""))
            out = REPO / "docs" / "img" / name
            out.parent.mkdir(parents=True, exist_ok=True)
            _save_small(page.screenshot(full_page=whole), out)
            written.append(out)
        browser.close()
    return written


def _save_small(png: bytes, out: Path) -> None:
    """A page has few colours: 256 of them keep the text crisp at a third of the bytes."""
    import io

    from PIL import Image

    Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256).save(out, optimize=True)


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--check", action="store_true", help="Exit 1 if a generated file is not current.")
    args.add_argument("--screenshots", type=Path, metavar="BUILD_ROOT",
                      help="Also take the report screenshots from this multi-target build (see above).")
    opts = args.parse_args(argv)
    if opts.screenshots:
        for path in screenshots(opts.screenshots):
            print(f"wrote {_shown(path)}")
    stale = [path for path, text in expected_files().items() if not path.exists() or path.read_text() != text]
    if opts.check:
        for path in stale:
            print(f"{_shown(path)} is not current: run python tools/gen_docs.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in expected_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for path in stale:
        print(f"wrote {_shown(path)}")
    return 0


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


if __name__ == "__main__":
    sys.exit(main())
