"""netem kinds, as Pumba's pkg/chaos/netem: delay, loss, rate, duplicate, corrupt.

The tc commands they become are built in tools/chaos/netem.py.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tools.chaos.durations import format_duration
from tools.chaos.kinds.base import Kind, ParamCheck, RandomDraw
from tools.chaos.kinds.params import (
    FaultError,
    read_choice,
    read_cidrs,
    read_int,
    read_interface,
    read_number,
    read_ports,
    require_duration,
    two_decimals,
)
from tools.chaos.netem import has_filters

# One root qdisc per interface: Pumba's second `tc qdisc add` fails with "File exists".
CONFLICT = "two netem faults on one container at once"
_RATE = re.compile(r"\d+[gmk]?bit")
_DISTRIBUTIONS = ("", "uniform", "normal", "pareto", "paretonormal")
_PARENT = ("interface", "destination", "egress_port", "ingress_port", "via")
# `via: proxy`: the same effect on the target's TCP paths through Toxiproxy (tools/chaos/docker/proxy.py),
# for kernels without sch_netem; only delay and rate have a toxic that does the same.
VIA = ("netem", "proxy")
PROXY_EQUIVALENT = ("netem delay", "netem rate")
_BITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3}


def _common(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    params = {
        "duration": require_duration(duration_ms),
        "interface": read_interface(raw),
        "destination": read_cidrs(raw, "destination"),
        "egress_port": read_ports(raw, "egress_port"),
        "ingress_port": read_ports(raw, "ingress_port"),
    }
    via = read_choice(raw, "via", "netem", VIA)
    if via == "proxy":
        if raw.get("kind") not in PROXY_EQUIVALENT:
            raise FaultError(
                f"'via: proxy': {raw.get('kind')} has no Toxiproxy equivalent (only netem delay, rate)"
            )
        if has_filters(params) or "interface" in raw:
            raise FaultError(
                "'via: proxy' acts on the target's proxied paths: drop interface and the filters"
            )
        params["via"] = via
    return params


def proxy_rate(rate: str) -> int:
    """A netem rate as Toxiproxy's bandwidth (KB/s of 1000 bytes), refused when it is not a whole one."""
    number, unit = int(rate[: -len("bit")].rstrip("gmk")), rate[: -len("bit")].lstrip("0123456789")
    bits = number * _BITS[unit]
    if bits % 8000:
        raise FaultError(f"'via: proxy': rate {rate} is not a whole number of KB/s (Toxiproxy's unit)")
    return bits // 8000


def _delay(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    params = _common(raw, duration_ms)
    time_ms = read_int(raw, "time", 100, lo=1)
    jitter = read_int(raw, "jitter", 10, lo=0)
    if jitter > time_ms:
        raise FaultError(f"'jitter' ({jitter}) must not exceed 'time' ({time_ms}), as in Pumba")
    params.update(
        time=time_ms,
        jitter=jitter,
        correlation=two_decimals("correlation", read_number(raw, "correlation", 20, 0, 100)),
        distribution=read_choice(raw, "distribution", "", _DISTRIBUTIONS),
    )
    return params


def _percent(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    params = _common(raw, duration_ms)
    percent = two_decimals("percent", read_number(raw, "percent", 0, 0, 100))
    if percent == 0:
        raise FaultError("'percent' must be > 0 (0 changes nothing)")
    params.update(
        percent=percent, correlation=two_decimals("correlation", read_number(raw, "correlation", 0, 0, 100))
    )
    return params


def _rate(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    params = _common(raw, duration_ms)
    rate = raw.get("rate", "100kbit")
    if not isinstance(rate, str) or not _RATE.fullmatch(rate):
        raise FaultError(f"'rate' must match \\d+[gmk]?bit (e.g. 100kbit), got {rate!r}")
    params.update(
        rate=rate,
        packetoverhead=read_int(raw, "packetoverhead", 0),
        cellsize=read_int(raw, "cellsize", 0, lo=0),
        celloverhead=read_int(raw, "celloverhead", 0),
    )
    if params.get("via") == "proxy":
        params["proxy_rate"] = proxy_rate(rate)
    return params


def _delay_draw(rng: random.Random, target: str, targets: Sequence[str], length_ms: int) -> dict[str, Any]:
    delay = rng.randint(50, 300)
    return {"kind": "netem delay", "target": target, "duration": format_duration(length_ms)} | {
        "time": delay,
        "jitter": min(10, delay),
    }


def _rate_draw(rng: random.Random, target: str, targets: Sequence[str], length_ms: int) -> dict[str, Any]:
    return {"kind": "netem rate", "target": target, "duration": format_duration(length_ms), "rate": "1mbit"}


def _percent_draw(kind: str) -> RandomDraw:
    def draw(rng: random.Random, target: str, targets: Sequence[str], length_ms: int) -> dict[str, Any]:
        percent = rng.randint(1, 20)
        return {"kind": kind, "target": target, "duration": format_duration(length_ms), "percent": percent}

    return draw


def _netem(name: str, params: tuple[str, ...], check: ParamCheck, draw: RandomDraw) -> Kind:
    return Kind(name, "netem", (*_PARENT, *params), check, network=True, conflicts=CONFLICT, random_draw=draw)


KINDS = (
    _netem("netem delay", ("time", "jitter", "correlation", "distribution"), _delay, _delay_draw),
    _netem("netem loss", ("percent", "correlation"), _percent, _percent_draw("netem loss")),
    _netem("netem rate", ("rate", "packetoverhead", "cellsize", "celloverhead"), _rate, _rate_draw),
    _netem("netem duplicate", ("percent", "correlation"), _percent, _percent_draw("netem duplicate")),
    _netem("netem corrupt", ("percent", "correlation"), _percent, _percent_draw("netem corrupt")),
)
