"""How figures read in the HTML report: the units of the terminal summary, and names cut to fit a phone.

Registered as Jinja filters (:mod:`edgepipe.report_html.env`). Every one accepts
``None`` (a figure that is absent, or not finite in ``report.json``) and shows
it as a dash, so a template never has to test for it first.
"""

from __future__ import annotations

from edgepipe.units import format_size, format_time

DASH = "–"


def number(value, digits: int = 4) -> str:
    """Up to ``digits`` significant digits; integers as they are, with thousands separators."""
    if value is None or isinstance(value, bool):
        return DASH if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}g}" if abs(value) < 1e15 else f"{value:.3g}"
    return str(value)


def value(v, unit: str = "") -> str:
    """A check's figure in its unit: bytes as KiB/MiB, seconds as ms/µs, anything else with its unit."""
    if v is None:
        return DASH
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if unit == "bytes":
            return format_size(v)
        if unit == "s":
            return format_time(v)
    text = number(v) if isinstance(v, (int, float)) else str(v)
    return f"{text} {unit}".strip() if unit else text


def size(v) -> str:
    return value(v, "bytes")


def duration(v) -> str:
    """Seconds as ms or µs; below 10 µs with decimals (Vela's per-op figures are fractions of a µs)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1e-5:
        return f"{v * 1e6:.2g} µs"
    return value(v, "s")


def percent(v, digits: int = 2) -> str:
    return DASH if v is None else f"{v:.{digits}f}%"


def decibels(v) -> str:
    """SQNR: ``None`` in a report is +∞ dB (the values were reproduced exactly)."""
    return "∞ dB (exact)" if v is None else f"{v:.1f} dB"


def short_hash(v, n: int = 12) -> str:
    return DASH if not v else str(v)[:n]


def short_name(name, keep: int = 2) -> str:
    """A TFLite tensor name as a person reads it: the first of its fused names, the last path parts."""
    if not name:
        return DASH
    first = str(name).split(";")[0]
    return "/".join(first.split("/")[-keep:])


FILTERS = {"num": number, "value": value, "size": size, "duration": duration, "pct": percent,
           "db": decibels, "hash": short_hash, "short": short_name}
