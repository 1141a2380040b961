"""Reading a report that may be hand-edited or from another version: absent or odd values become empty ones.

``edgepipe report`` renders any ``report.json`` it is given; a key of the wrong
type must leave its figure out of the page, not stop the page.
"""

from __future__ import annotations


def as_dict(v) -> dict:
    return v if isinstance(v, dict) else {}


def as_list(v) -> list:
    return v if isinstance(v, list) else []


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def fraction(v, scale) -> float:
    """``v / scale`` within [0, 1]; 0 for anything that is not a positive figure."""
    if not is_number(v) or not is_number(scale) or scale <= 0:
        return 0.0
    return min(max(v / scale, 0.0), 1.0)


def dig(doc, *keys):
    """``doc[k1][k2]...``, or None where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc
