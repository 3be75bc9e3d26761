"""Typed readers for a fault's parameters: each checks one key and raises FaultError naming it."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from tools.chaos.durations import DurationError, format_duration, parse_duration

_IFACE = re.compile(r"[a-zA-Z][a-zA-Z0-9.:_-]*")


class FaultError(ValueError):
    """One problem with one fault; the scenario loader adds the file and the fault index."""


def read_bool(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise FaultError(f"'{key}' must be true or false, got {value!r}")
    return value


def read_int(
    raw: Mapping[str, Any], key: str, default: int, lo: int | None = None, hi: int | None = None
) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultError(f"'{key}' must be an integer, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise FaultError(f"'{key}' must be between {lo} and {hi}, got {value}")
    return value


def read_number(raw: Mapping[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(f"'{key}' must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise FaultError(f"'{key}' must be between {lo:g} and {hi:g}, got {value!r}")
    return value


def two_decimals(key: str, value: float) -> float:
    # tc/Pumba print these with %.2f: refuse values that would be silently rounded.
    if round(value, 2) != value:
        raise FaultError(f"'{key}' allows at most 2 decimals (netem rounds to 0.01), got {value!r}")
    return value


def read_choice(raw: Mapping[str, Any], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = raw.get(key, default)
    if value not in choices:
        shown = ", ".join(c or '""' for c in choices)
        raise FaultError(f"'{key}' must be one of {shown}, got {value!r}")
    return value


def read_interface(raw: Mapping[str, Any]) -> str:
    value = raw.get("interface", "eth0")
    if not isinstance(value, str) or not _IFACE.fullmatch(value):
        raise FaultError(f"'interface' must match [a-zA-Z][a-zA-Z0-9.:_-]*, got {value!r}")
    return value


def read_list(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if isinstance(value, str) and "," in value:
        return [part.strip() for part in value.split(",")]
    return list(value) if isinstance(value, list) else [value]


def read_cidrs(raw: Mapping[str, Any], key: str) -> list[str]:
    out = []
    for item in read_list(raw, key):
        try:
            # A bare IP becomes /32, as in Pumba.
            out.append(str(ipaddress.IPv4Network(str(item), strict=False)))
        except ValueError:
            raise FaultError(f"'{key}' must be IPv4 addresses or CIDRs, got {item!r}") from None
    return out


def read_ports(raw: Mapping[str, Any], key: str) -> list[int]:
    out = []
    for item in read_list(raw, key):
        try:
            port = int(str(item), 10)
        except ValueError:
            raise FaultError(f"'{key}' must be ports 0-65535, got {item!r}") from None
        if isinstance(item, bool) or not 0 <= port <= 65535:
            raise FaultError(f"'{key}' must be ports 0-65535, got {item!r}")
        out.append(port)
    return out


def read_positive_duration(raw: Mapping[str, Any], key: str, default: str | None = None) -> int | None:
    if key not in raw and default is None:
        return None
    value = raw.get(key, default)
    try:
        ms = parse_duration(value)
    except DurationError as exc:
        raise FaultError(f"'{key}': {exc}") from None
    if ms <= 0:
        raise FaultError(f"'{key}' must be a positive duration, got {value!r}")
    return ms


def read_services(raw: Mapping[str, Any], key: str) -> list[str]:
    items = read_list(raw, key)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise FaultError(f"'{key}' must be service names, got {item!r}")
    if len(set(items)) != len(items):
        raise FaultError(f"'{key}' names a service twice: {items}")
    return items


def require_duration(duration_ms: int | None) -> str:
    """The common `duration`, required by this kind, as the Go-style string Pumba takes."""
    if duration_ms is None:
        raise FaultError("'duration' is required for this kind")
    return format_duration(duration_ms)


def forbid_duration(duration_ms: int | None, hint: str) -> None:
    if duration_ms is not None:
        raise FaultError(f"'duration' does not apply to this kind ({hint})")
