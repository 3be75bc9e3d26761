"""What defines a fault kind: its parameters and their check, how long it lasts, and how a random plan
draws one. The executors' units (tools/chaos/{docker,systemd,pumba}/) say how to plan, apply and undo it."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# check(raw fault, validated common `duration` or None) -> the normalised params (JSON, defaults filled in)
ParamCheck = Callable[[Mapping[str, Any], "int | None"], dict[str, Any]]
# f(params, duration_ms) -> milliseconds, or None for "until the end of the chaos phase"
Span = Callable[[Mapping[str, Any], "int | None"], "int | None"]
# draw(rng, target, every target of the plan, fault length) -> a raw scenario entry, or None to skip
RandomDraw = Callable[[random.Random, str, Sequence[str], int], "dict[str, Any] | None"]


def the_duration(params: Mapping[str, Any], duration_ms: int | None) -> int | None:
    return duration_ms


def no_target_check(targets: Sequence[str], params: Mapping[str, Any]) -> None:
    return None


def no_peers(params: Mapping[str, Any]) -> list[str]:
    return []


@dataclass(frozen=True)
class Kind:
    name: str  # as scenarios spell it: "pause", "iptables loss"
    family: str  # the module it lives in: lifecycle, iptables, netem
    params: tuple[str, ...]  # the keys it takes besides kind, name, target(s), at, duration
    check: ParamCheck
    # How long it disturbs its target (the schedule and the quorum rule use it).
    window_ms: Span = the_duration
    # How long the docker and systemd executors hold it before its undo (0: undo at once).
    hold_ms: Span = the_duration
    # The fault's `duration_ms` once its params are known (e.g. stop: only with restart).
    duration_ms: Span = the_duration
    # Problems between the targets and the params (e.g. a partition's target among its peers).
    check_targets: Callable[[Sequence[str], Mapping[str, Any]], None] = no_target_check
    # Other services the fault names (they must exist too), e.g. a partition's peers.
    peers: Callable[[Mapping[str, Any]], list[str]] = no_peers
    disruptive: bool = False  # takes a target out of service: the Kafka quorum rule counts it
    network: bool = False  # changes the target's network namespace (needs the nettools image)
    # Two faults of one conflict group on one target at once cannot both work ("" = no group).
    conflicts: str = ""
    random_draw: RandomDraw | None = None  # None: never in a random plan...
    never_random: str = ""  # ...and why, for the error that refuses it in a random scenario's `kinds`
