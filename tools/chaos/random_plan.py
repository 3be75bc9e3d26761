"""`scenario: random`: a seeded plan of faults at random intervals, the same plan for the same seed."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tools.chaos.durations import format_duration
from tools.chaos.faults import FaultSpec, parse_fault
from tools.chaos.schedule import check_conflicts, check_quorum

# rm destroys state, so a random plan never uses it.
RANDOM_KINDS = (
    "kill",
    "stop",
    "pause",
    "restart",
    "iptables loss",
    "iptables partition",
    "netem delay",
    "netem loss",
    "netem rate",
    "netem duplicate",
    "netem corrupt",
)
# How many (kind, target) draws to try at one slot before leaving the slot empty.
_TRIES = 8


@dataclass(frozen=True)
class RandomSpec:
    seed: int
    duration_ms: int
    kinds: tuple[str, ...]
    targets: tuple[str, ...]
    interval_ms: tuple[int, int]  # gap between fault starts, min and max
    fault_ms: tuple[int, int]  # fault length, min and max
    allow_quorum_loss: bool
    max_brokers_down: int
    recovery_gap_ms: int


def _seconds(rng: random.Random, bounds: tuple[int, int]) -> int:
    """A whole number of seconds in [min, max], as milliseconds (keeps plans readable and exact)."""
    lo, hi = -(-bounds[0] // 1000), bounds[1] // 1000
    return rng.randint(lo, max(lo, hi)) * 1000


def _raw_fault(
    rng: random.Random, kind: str, target: str, targets: tuple[str, ...], length_ms: int
) -> dict[str, Any]:
    length = format_duration(length_ms)
    raw: dict[str, Any] = {"kind": kind, "target": target}
    if kind == "kill":
        raw["restart_after"] = length
    elif kind == "stop":
        raw.update(restart=True, duration=length)
    elif kind == "restart":
        raw["timeout"] = "1s"
    elif kind == "iptables loss":
        raw.update(duration=length, probability=rng.randint(10, 50) / 100)
    elif kind == "iptables partition":
        raw.update(duration=length, peers=[t for t in targets if t != target])
    elif kind == "netem delay":
        delay = rng.randint(50, 300)
        raw.update(duration=length, time=delay, jitter=min(10, delay))
    elif kind == "netem rate":
        raw.update(duration=length, rate="1mbit")
    elif kind.startswith("netem "):
        raw.update(duration=length, percent=rng.randint(1, 20))
    else:  # pause
        raw["duration"] = length
    return raw


def generate(spec: RandomSpec, is_broker: Callable[[str], bool]) -> list[FaultSpec]:
    """Walk the phase in random steps; at each step draw a fault that keeps every rule, or skip the step."""
    rng = random.Random(spec.seed)
    faults: list[FaultSpec] = []
    at = 0
    while True:
        at += _seconds(rng, spec.interval_ms)
        if at >= spec.duration_ms:
            return faults
        for _ in range(_TRIES):
            kind = rng.choice(spec.kinds)
            target = rng.choice(spec.targets)
            length = _seconds(rng, spec.fault_ms)
            if kind == "iptables partition" and len(spec.targets) < 2:
                continue
            raw = _raw_fault(rng, kind, target, spec.targets, length)
            raw["at"] = format_duration(at)
            raw["name"] = f"random {kind} {target}"
            candidate = parse_fault(len(faults) + 1, raw)
            window = candidate.window_ms or 0
            if at + window > spec.duration_ms:
                continue
            trial = [*faults, candidate]
            if check_conflicts(trial, spec.duration_ms):
                continue
            if not spec.allow_quorum_loss and check_quorum(
                trial, spec.duration_ms, is_broker, spec.max_brokers_down, spec.recovery_gap_ms
            ):
                continue
            faults.append(candidate)
            break
