"""``report.html``: the build or verify report as one self-contained page a person reads, on a phone too.

The page is rendered from ``report.json`` by Jinja templates shipped in
``edgepipe/templates`` and draws its charts as inline SVG: no script, font,
image or network request (a Content-Security-Policy says so to the browser).
Sections whose data a report lacks are left out. Only jinja2 is needed, so
``verify`` stays light (no TensorFlow, no matplotlib).

:func:`render_report` renders one report; :func:`render_comparison` one page for
several targets. Writing the page is :mod:`edgepipe.report_html.publish`'s job.
"""

from __future__ import annotations

from edgepipe.report_html.env import render
from edgepipe.report_html.view import report_view


def render_report(doc: dict) -> str:
    """The page for one report (a ``report.json`` document, or the dict a build holds)."""
    return render("report.html.j2", v=report_view(doc))


def render_comparison(entries: list[dict]) -> str:
    """One page comparing targets; ``entries`` are ``{"target", "href", "report" or "error"}``."""
    from edgepipe.report_html.compare import comparison_view

    return render("compare.html.j2", v=comparison_view(entries))
