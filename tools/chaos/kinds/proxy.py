"""proxy kinds: Toxiproxy's toxics on the TCP proxies every client path goes through (the toxiproxy role).

`proxy <toxic>` with Toxiproxy's toxic names and attribute names and units; the scope says which proxies:
the target's `inbound` paths (it is the server), its `outbound` ones (it is the client), or `all`, and
`peer` narrows it to the paths between the target and one service (`target: spark, paths: outbound,
peer: kafka-2` is Spark -> kafka-2 only). `direction` is Toxiproxy's stream: upstream (client -> server),
downstream (server -> client; Toxiproxy's default) or both (one toxic on each).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tools.chaos.durations import format_duration
from tools.chaos.kinds.base import Kind, ParamCheck, RandomDraw
from tools.chaos.kinds.params import FaultError, read_choice, read_int, read_number, require_duration

FAMILY = "proxy"
PATHS = ("inbound", "outbound", "all")
DIRECTIONS = ("upstream", "downstream", "both")
COMMON = ("paths", "peer", "direction", "toxicity")
# kind -> (Toxiproxy's toxic type, its attributes in order)
TOXICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "proxy latency": ("latency", ("latency", "jitter")),
    "proxy bandwidth": ("bandwidth", ("rate",)),
    "proxy timeout": ("timeout", ("timeout",)),
    "proxy reset_peer": ("reset_peer", ("timeout",)),
    "proxy slow_close": ("slow_close", ("delay",)),
    "proxy slicer": ("slicer", ("average_size", "size_variation", "delay")),
    "proxy limit_data": ("limit_data", ("bytes",)),
}
MAX_INT = 2**31 - 1


def streams(direction: str) -> list[str]:
    return ["upstream", "downstream"] if direction == "both" else [direction]


def _common(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    peer = raw.get("peer", "")
    if not isinstance(peer, str):
        raise FaultError(f"'peer' must be one service name, got {peer!r}")
    toxicity = read_number(raw, "toxicity", 1, 0, 1)
    if toxicity == 0:
        raise FaultError("'toxicity' must be > 0 (0 changes nothing)")
    return {
        "duration": require_duration(duration_ms),
        "paths": read_choice(raw, "paths", "inbound", PATHS),
        "peer": peer.strip(),
        "direction": read_choice(raw, "direction", "downstream", DIRECTIONS),
        "toxicity": toxicity,
    }


def _latency(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    params = _common(raw, duration_ms)
    latency = read_int(raw, "latency", 100, lo=1, hi=MAX_INT)
    jitter = read_int(raw, "jitter", 0, lo=0, hi=MAX_INT)
    if jitter > latency:
        # Toxiproxy adds latency +/- jitter: a larger jitter would ask for negative delays.
        raise FaultError(f"'jitter' ({jitter}) must not exceed 'latency' ({latency})")
    return params | {"latency": latency, "jitter": jitter}


def _bandwidth(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    # Toxiproxy's rate is in KB/s of 1000 bytes; 0 would stop the path (that is `proxy timeout`).
    return _common(raw, duration_ms) | {"rate": read_int(raw, "rate", 100, lo=1, hi=MAX_INT)}


def _timeout(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    # 0: data stops until the toxic is removed; N: the connection is closed after N ms (Toxiproxy's).
    return _common(raw, duration_ms) | {"timeout": read_int(raw, "timeout", 0, lo=0, hi=MAX_INT)}


def _reset_peer(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    # Connections are reset (TCP RST) after `timeout` ms; 0 at once (Toxiproxy's default).
    return _common(raw, duration_ms) | {"timeout": read_int(raw, "timeout", 0, lo=0, hi=MAX_INT)}


def _slow_close(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    return _common(raw, duration_ms) | {"delay": read_int(raw, "delay", 1000, lo=1, hi=MAX_INT)}


def _slicer(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    params = _common(raw, duration_ms)
    average = read_int(raw, "average_size", 64, lo=1, hi=MAX_INT)
    variation = read_int(raw, "size_variation", 0, lo=0, hi=MAX_INT)
    if variation >= average:
        raise FaultError(f"'size_variation' ({variation}) must be smaller than 'average_size' ({average})")
    # delay: microseconds between the slices, as in Toxiproxy.
    return (
        params
        | {"average_size": average, "size_variation": variation}
        | {"delay": read_int(raw, "delay", 0, lo=0, hi=MAX_INT)}
    )


def _limit_data(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    return _common(raw, duration_ms) | {"bytes": read_int(raw, "bytes", 1024, lo=1, hi=2**62)}


def attributes(kind: str, params: Mapping[str, Any]) -> dict[str, int]:
    """The toxic's attributes, as Toxiproxy's API takes them."""
    return {key: int(params[key]) for key in TOXICS[kind][1]}


def _peer_check(targets: Sequence[str], params: Mapping[str, Any]) -> None:
    if params["peer"] and params["peer"] in targets:
        raise FaultError(f"'peer' {params['peer']!r} is the target itself")


def _draw(kind: str, extra: Callable[[random.Random], dict[str, Any]]) -> RandomDraw:
    def draw(rng: random.Random, target: str, targets: Sequence[str], length_ms: int) -> dict[str, Any]:
        base = {"kind": kind, "target": target, "duration": format_duration(length_ms)}
        return base | {"paths": "all", "direction": "both"} | extra(rng)

    return draw


def _kind(
    name: str, check: ParamCheck, draw: RandomDraw | None, why: str = "", disruptive: bool = False
) -> Kind:
    return Kind(
        name,
        FAMILY,
        (*COMMON, *TOXICS[name][1]),
        check,
        check_targets=_peer_check,
        peers=lambda params: [params["peer"]] if params["peer"] else [],
        disruptive=disruptive,
        random_draw=draw,
        never_random=why,
    )


_STOPS = "stops or cuts a path: schedule it by hand"
KINDS = (
    _kind(
        "proxy latency",
        _latency,
        _draw("proxy latency", lambda rng: {"latency": (ms := rng.randint(50, 300)), "jitter": min(10, ms)}),
    ),
    _kind(
        "proxy bandwidth",
        _bandwidth,
        _draw("proxy bandwidth", lambda rng: {"rate": rng.choice([64, 256, 1024])}),
    ),
    # A path that passes no data (or is reset) is a broker out of service for the quorum rule.
    _kind("proxy timeout", _timeout, None, _STOPS, disruptive=True),
    _kind("proxy reset_peer", _reset_peer, None, _STOPS, disruptive=True),
    _kind(
        "proxy slow_close",
        _slow_close,
        _draw("proxy slow_close", lambda rng: {"delay": rng.randint(500, 3000)}),
    ),
    _kind(
        "proxy slicer",
        _slicer,
        _draw(
            "proxy slicer",
            lambda rng: {"average_size": 64, "size_variation": 32, "delay": rng.randint(10, 500)},
        ),
    ),
    _kind("proxy limit_data", _limit_data, None, _STOPS, disruptive=True),
)
