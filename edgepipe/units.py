"""Strict parsing of human sizes, times, frequencies, energies and powers used in profiles.

``512KiB`` and ``512KB`` are both sizes (binary and decimal); ``512 bananas``
is an error that says which units exist. Plain numbers are accepted only
where the unit is unambiguous (bytes for sizes); times and frequencies must
carry a unit, because ``20`` could be seconds or milliseconds.
"""

from __future__ import annotations

import math
import re

_NUMBER = r"(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"

SIZE_UNITS = {
    "B": 1,
    "KB": 1000, "MB": 1000**2, "GB": 1000**3,
    "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3,
}
TIME_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
FREQ_UNITS = {"Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9}
ENERGY_UNITS = {"nJ": 1e-9, "uJ": 1e-6, "µJ": 1e-6, "mJ": 1e-3, "J": 1.0}
POWER_UNITS = {"uW": 1e-6, "µW": 1e-6, "mW": 1e-3, "W": 1.0}


class UnitError(ValueError):
    """A value whose number or unit could not be read."""


def _parse(text: object, units: dict[str, float], what: str, bare_ok: bool) -> float:
    """A finite, non-negative amount: NaN, infinities (``1e400``) and negatives are refused."""
    if isinstance(text, bool):
        raise UnitError(f"expected a {what} such as {_example(units)}, found {text!r}")
    if isinstance(text, (int, float)):
        if bare_ok:
            return _finite(float(text), text, what)
        raise UnitError(
            f"expected a {what} with a unit such as {_example(units)}, found bare number {text!r}"
        )
    if not isinstance(text, str):
        raise UnitError(f"expected a {what} such as {_example(units)}, found {type(text).__name__}")
    m = re.fullmatch(_NUMBER + r"\s*(?P<unit>[A-Za-zµ]*)", text.strip())
    if not m:
        raise UnitError(f"expected a {what} such as {_example(units)}, found {text!r}")
    unit = m.group("unit")
    if unit == "" and bare_ok:
        return _finite(float(m.group("num")), text, what)
    if unit not in units:
        raise UnitError(
            f"unknown unit {unit!r} in {text!r}; a {what} takes one of {', '.join(units)}"
        )
    return _finite(float(m.group("num")) * units[unit], text, what)


def _finite(value: float, text: object, what: str) -> float:
    if not math.isfinite(value):
        raise UnitError(f"expected a finite {what}, found {text!r}")
    if value < 0:
        raise UnitError(f"expected a {what} of 0 or more, found {text!r}")
    return value


def _example(units: dict[str, float]) -> str:
    names = list(units)
    return " or ".join(f"'2{u}'" for u in names[-2:])


def parse_size(text: object) -> int:
    """Bytes from '512KiB', '2MB', '4096B' or a bare integer of bytes."""
    value = _parse(text, SIZE_UNITS, "size", bare_ok=True)
    if value != int(value):
        raise UnitError(f"a size must be a whole number of bytes, found {text!r}")
    return int(value)


def parse_time(text: object) -> float:
    """Seconds from '20ms', '1.5s' or '500us'."""
    return _parse(text, TIME_UNITS, "time", bare_ok=False)


def parse_frequency(text: object) -> float:
    """Hertz from '240MHz' or '1.5GHz'."""
    return _parse(text, FREQ_UNITS, "frequency", bare_ok=False)


def parse_energy(text: object) -> float:
    """Joules from '150uJ', '2mJ' or '0.5J' (a bare number is refused: µJ or mJ?)."""
    return _parse(text, ENERGY_UNITS, "quantity of energy", bare_ok=False)


def parse_power(text: object) -> float:
    """Watts from '40mW', '1.2W' or '850uW'."""
    return _parse(text, POWER_UNITS, "power", bare_ok=False)


def format_energy(joules: float) -> str:
    """Readable energy: 0.000417 -> '417 µJ', 0.0292 -> '29.2 mJ'."""
    if joules >= 1:
        return f"{joules:.3g} J"
    if joules >= 1e-3:
        return f"{joules * 1e3:.3g} mJ"
    return f"{joules * 1e6:.3g} µJ"


def format_size(n: float) -> str:
    """Readable binary size: 1536 -> '1.5 KiB'."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{int(n)} B"


def format_time(seconds: float) -> str:
    """Readable duration: 0.0123 -> '12.30 ms'."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} µs"
