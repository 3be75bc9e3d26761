"""Go-style durations (`30s`, `1m30s`, `500ms`), the format Pumba's flags and our scenarios use.

Durations are kept as whole milliseconds so schedules are exact and comparisons never hit float noise.
"""

from __future__ import annotations

import re
from decimal import Decimal

_UNIT_MS = {
    "ns": Decimal("0.000001"),
    "us": Decimal("0.001"),
    "µs": Decimal("0.001"),
    "μs": Decimal("0.001"),
    "ms": Decimal(1),
    "s": Decimal(1000),
    "m": Decimal(60_000),
    "h": Decimal(3_600_000),
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_WHOLE = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")


class DurationError(ValueError):
    """A duration string Go's time.ParseDuration would reject, or one finer than a millisecond."""


def parse_duration(value: object) -> int:
    """Milliseconds. Go syntax or a bare 0; a negative value comes back negative for the caller to judge."""
    if isinstance(value, bool):
        raise DurationError(f"expected a duration like 30s, got {value!r}")
    if isinstance(value, int) and value == 0:
        return 0
    if not isinstance(value, str):
        raise DurationError(f"expected a duration with a unit like 30s or 1m30s, got {value!r}")
    text = value.strip()
    if text in ("0", "+0", "-0"):
        return 0
    if not _WHOLE.fullmatch(text):
        raise DurationError(f"invalid duration {value!r} (use Go syntax like 30s, 1m30s, 500ms)")
    sign = -1 if text.startswith("-") else 1
    total = sum(Decimal(num) * _UNIT_MS[unit] for num, unit in _PART.findall(text.lstrip("+-")))
    if total != total.to_integral_value():
        raise DurationError(f"duration {value!r} is finer than a millisecond")
    return sign * int(total)


def format_duration(ms: int) -> str:
    """Go's Duration.String() for whole milliseconds: 1h2m3.5s, 1m30s, 20s, 500ms, 0s."""
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    if ms < 1000:
        return f"{sign}{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    sec = f"{seconds}" if millis == 0 else f"{seconds}.{millis:03d}".rstrip("0")
    if hours:
        return f"{sign}{hours}h{minutes}m{sec}s"
    if minutes:
        return f"{sign}{minutes}m{sec}s"
    return f"{sign}{sec}s"


def format_offset(ms: int) -> str:
    """A schedule offset for humans: T+MM:SS.mmm."""
    minutes, rest = divmod(ms, 60_000)
    return f"T+{minutes:02d}:{rest / 1000:06.3f}"
