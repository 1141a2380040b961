"""JUnit XML: one test case per check, so a CI system shows which budget failed.

A failed check becomes ``<failure>`` with the check's detail as message; a
skipped one ``<skipped>``; a build or verify that stopped on bad input (exit
2) becomes one ``<error>`` case. One ``<testsuite>`` per target.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from edgepipe.checks import Check
from edgepipe.emit.files import write_atomic


@dataclass(frozen=True)
class Suite:
    """The checks of one command on one target (or the error that stopped it)."""

    name: str
    checks: tuple[Check, ...] = ()
    error: str | None = None
    properties: dict = field(default_factory=dict)


def junit_xml(suites: list[Suite]) -> str:
    root = ET.Element("testsuites", name="edgepipe")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        el = ET.SubElement(root, "testsuite", name=suite.name)
        counts = _fill(el, suite)
        for k, v in counts.items():
            el.set(k, str(v))
            totals[k] += v
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(path: str | Path, suites: list[Suite]) -> Path:
    return write_atomic(path, junit_xml(suites))


def _fill(el: ET.Element, suite: Suite) -> dict:
    if suite.properties:
        props = ET.SubElement(el, "properties")
        for k, v in suite.properties.items():
            ET.SubElement(props, "property", name=str(k), value=str(v))
    if suite.error is not None:
        case = ET.SubElement(el, "testcase", name="run", classname=suite.name)
        ET.SubElement(case, "error", message=suite.error, type="usage").text = suite.error
        return {"tests": 1, "failures": 0, "errors": 1, "skipped": 0}
    counts = {"tests": len(suite.checks), "failures": 0, "errors": 0, "skipped": 0}
    for c in suite.checks:
        case = ET.SubElement(el, "testcase", name=c.name, classname=suite.name)
        if c.status == "fail":
            ET.SubElement(case, "failure", message=c.detail, type=c.name).text = _figures(c)
            counts["failures"] += 1
        elif c.status == "skip":
            ET.SubElement(case, "skipped", message=c.detail)
            counts["skipped"] += 1
        else:
            ET.SubElement(case, "system-out").text = f"{c.detail}\n{_figures(c)}"
    return counts


def _figures(c: Check) -> str:
    return f"measured={c.measured} budget={c.budget} unit={c.unit} source={c.source}"
