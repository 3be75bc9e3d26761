"""iptables kinds, as Pumba's pkg/chaos/iptables: iptables loss, and chaosbed's iptables partition."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from tools.chaos.durations import format_duration
from tools.chaos.kinds.base import Kind
from tools.chaos.kinds.params import (
    FaultError,
    read_choice,
    read_cidrs,
    read_int,
    read_interface,
    read_number,
    read_ports,
    read_services,
    require_duration,
)


def _loss(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    duration = require_duration(duration_ms)
    protocol = read_choice(raw, "protocol", "any", ("any", "tcp", "udp", "icmp"))
    params: dict[str, Any] = {
        "duration": duration,
        "interface": read_interface(raw),
        "protocol": protocol,
        "source": read_cidrs(raw, "source"),
        "destination": read_cidrs(raw, "destination"),
        "src_port": read_ports(raw, "src_port"),
        "dst_port": read_ports(raw, "dst_port"),
        "mode": read_choice(raw, "mode", "random", ("random", "nth")),
    }
    if (params["src_port"] or params["dst_port"]) and protocol not in ("tcp", "udp"):
        raise FaultError("'src_port'/'dst_port' need protocol tcp or udp (as in Pumba)")
    if params["mode"] == "random":
        if "every" in raw or "packet" in raw:
            raise FaultError("'every'/'packet' only apply to mode nth")
        if "probability" not in raw:
            raise FaultError("'probability' is required for mode random")
        probability = read_number(raw, "probability", 0.0, 0.0, 1.0)
        if probability == 0:
            raise FaultError("'probability' must be > 0 (a rule with probability 0 drops nothing)")
        params["probability"] = probability  # kept exact: never rounded (Pumba rounds to 2 decimals)
    else:
        if "probability" in raw:
            raise FaultError("'probability' only applies to mode random")
        if "every" not in raw:
            raise FaultError("'every' is required for mode nth")
        params["every"] = read_int(raw, "every", 0, lo=1)
        params["packet"] = read_int(raw, "packet", 0, lo=0, hi=params["every"] - 1)
    return params


def _loss_draw(rng: random.Random, target: str, targets: Sequence[str], length_ms: int) -> dict[str, Any]:
    probability = rng.randint(10, 50) / 100
    return {"kind": "iptables loss", "target": target, "duration": format_duration(length_ms)} | {
        "probability": probability
    }


def _partition(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    duration = require_duration(duration_ms)
    peers = read_services(raw, "peers")
    if not peers:
        raise FaultError("'peers' must name at least one service to cut the target off from")
    return {"duration": duration, "interface": read_interface(raw), "peers": peers}


def _partition_targets(targets: Sequence[str], params: Mapping[str, Any]) -> None:
    overlap = sorted(set(targets) & set(params["peers"]))
    if overlap:
        raise FaultError(f"a target cannot be its own peer: {overlap[0]!r}")


def _partition_draw(
    rng: random.Random, target: str, targets: Sequence[str], length_ms: int
) -> dict[str, Any] | None:
    if len(targets) < 2:
        return None  # nobody to cut it off from
    peers = [t for t in targets if t != target]
    return {
        "kind": "iptables partition",
        "target": target,
        "duration": format_duration(length_ms),
        "peers": peers,
    }


KINDS = (
    Kind(
        "iptables loss",
        "iptables",
        (
            *("interface", "protocol", "source", "destination", "src_port", "dst_port"),
            *("mode", "probability", "every", "packet"),
        ),
        _loss,
        network=True,
        random_draw=_loss_draw,
    ),
    Kind(
        "iptables partition",
        "iptables",
        ("interface", "peers"),
        _partition,
        check_targets=_partition_targets,
        peers=lambda params: list(params["peers"]),
        disruptive=True,
        network=True,
        random_draw=_partition_draw,
    ),
)
