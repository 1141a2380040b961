"""The Jinja environment: templates shipped inside the package, every value escaped.

Templates live in ``edgepipe/templates`` (packaged with the wheel as package
data) and are found through the package, not a path, so an installed edgepipe
renders the same page as a checkout. Undefined names raise (StrictUndefined):
a section whose data is absent is left out by the view (``None``), never by a
template quietly printing nothing.

The page allows no script, font, image or connection (Content-Security-Policy
``default-src 'none'``); its one stylesheet is inline and allowed by its
sha256, so a stray ``style=`` attribute or injected ``<style>`` would be
refused by the browser (and fail the browser test) rather than applied.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from edgepipe.report_html.formats import FILTERS


@lru_cache(maxsize=1)
def environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("edgepipe", "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(FILTERS)
    return env


@lru_cache(maxsize=1)
def stylesheet() -> tuple[str, str]:
    """(the CSS, its sha256 in base64, as a CSP ``'sha256-...'`` source names it)."""
    css = environment().get_template("style.css.j2").render()
    return css, base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")


def render(template: str, **context) -> str:
    """``template`` rendered with the stylesheet and its CSP hash."""
    from markupsafe import Markup

    css, css_sha256 = stylesheet()
    return environment().get_template(template).render(css=Markup(css), css_sha256=css_sha256, **context)
