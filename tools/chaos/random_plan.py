"""`scenario: random`: a seeded plan of faults at random intervals, the same plan for the same seed."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from tools.chaos import kinds
from tools.chaos.durations import format_duration
from tools.chaos.faults import FaultSpec, parse_fault
from tools.chaos.kinds import RANDOM_KINDS
from tools.chaos.schedule import check_conflicts, check_quorum

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
            draw = kinds.get(kind).random_draw
            raw = draw(rng, target, spec.targets, length) if draw is not None else None
            if raw is None:
                continue
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


__all__ = ["RANDOM_KINDS", "RandomSpec", "generate"]
