"""Durations as operators write them: Go's ``time.ParseDuration`` forms, plus days.

``500ms``, ``30s``, ``1m``, ``24h`` and compound forms such as ``1h30m``, ``1m30s``, ``1.5h`` or
``2h45m30.5s`` (what the Go original's users have in their configs), ``7d``, or plain seconds
(``30``, ``0.5``). Units: ns, us (µs), ms, s, m, h, d. Negative durations are refused.
"""

from __future__ import annotations

import re

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 micro sign, as Go spells it
    "μs": 1e-6,  # U+03BC Greek mu, which Go accepts too
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_UNITS = "|".join(sorted(_UNIT_SECONDS, key=len, reverse=True))  # "ms" before "m"
_PART = re.compile(rf"({_NUMBER})\s*({_UNITS})")
_COMPOUND = re.compile(rf"(?:{_NUMBER}\s*(?:{_UNITS})\s*)+")
_PLAIN = re.compile(_NUMBER)
EXPECTED = "expected a duration such as 500ms, 30s, 1m30s, 1.5h or 24h"


def parse_duration(value: object) -> float:
    """Seconds, as a float, from a duration string or a plain non-negative number."""
    if isinstance(value, bool):
        raise ValueError(EXPECTED)
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("duration must not be negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if _PLAIN.fullmatch(text):
            return float(text)
        if _COMPOUND.fullmatch(text):
            return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
    raise ValueError(f"invalid duration {value!r}: {EXPECTED}")


def format_duration(seconds: float) -> str:
    """Render seconds back in the shortest unit that shows them exactly."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis and millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"
