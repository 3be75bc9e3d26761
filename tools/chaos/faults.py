"""A scenario entry, validated: the common keys here, each kind's own params in tools/chaos/kinds/."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tools.chaos import kinds
from tools.chaos.deployment import KEY as SPARK_DEPLOY_KEY
from tools.chaos.deployment import read_requirement
from tools.chaos.durations import DurationError, parse_duration
from tools.chaos.kinds import (
    DISRUPTIVE_KINDS,
    KINDS,
    LIFECYCLE_KINDS,
    NETEM_KINDS,
    NETWORK_KINDS,
    FaultError,
)
from tools.chaos.kinds.params import read_positive_duration, read_services
from tools.chaos.triggers import Trigger, is_dynamic, parse_trigger

COMMON_KEYS = frozenset(
    {"kind", "name", "target", "targets", "at", "duration", "after", "concurrent_with", SPARK_DEPLOY_KEY}
)


@dataclass(frozen=True)
class FaultSpec:
    """One validated scenario entry (it may name several targets)."""

    index: int  # 1-based position in the scenario file
    name: str
    kind: str
    targets: tuple[str, ...]
    at_ms: int
    duration_ms: int | None
    params: dict[str, Any] = field(default_factory=dict)
    trigger: Trigger | None = None  # `after:`: fires on a pipeline event at or after `at`
    concurrent_with: str | None = None  # the name of a fault it is meant to overlap (the report says so)
    spark_deploy: str | None = None  # the Spark deployment it needs; elsewhere it is not applicable

    @property
    def wait_ms(self) -> int:
        """How much later than `at` it may start: 0 on the clock, the watch plus the delay on a trigger."""
        return 0 if self.trigger is None else self.trigger.wait_ms

    @property
    def window_ms(self) -> int | None:
        """How long the fault disturbs its target; None = until the end of the run (restored then)."""
        return kinds.get(self.kind).window_ms(self.params, self.duration_ms)

    @property
    def hold_ms(self) -> int | None:
        """How long chaosbed holds it before its undo; None = until the end of the chaos phase."""
        return kinds.get(self.kind).hold_ms(self.params, self.duration_ms)


def parse_fault(index: int, raw: object) -> FaultSpec:
    """Validate one scenario entry. Raises FaultError with a message that names the problem."""
    if not isinstance(raw, dict):
        raise FaultError(f"must be a mapping with kind, target and at, got {type(raw).__name__}")
    name = raw.get("kind")
    if name is None:
        raise FaultError("missing 'kind'")
    if name not in kinds.REGISTRY:
        raise FaultError(f"unknown kind {name!r} (known: {', '.join(KINDS)})")
    kind = kinds.get(name)
    unknown = sorted(str(k) for k in raw if k not in COMMON_KEYS and k not in kind.params)
    if unknown:
        raise FaultError(
            f"unknown param {unknown[0]!r} for kind {name!r} (allowed: {', '.join(kind.params) or 'none'})"
        )
    if "target" in raw and "targets" in raw:
        raise FaultError("give either 'target' or 'targets', not both")
    targets = read_services(raw, "target" if "target" in raw else "targets")
    if not targets:
        raise FaultError("missing target: name the service(s) explicitly with 'target' or 'targets'")
    if "at" not in raw:
        raise FaultError("missing 'at' (start offset from the chaos phase start, e.g. 30s)")
    try:
        at_ms = parse_duration(raw["at"])
    except DurationError as exc:
        raise FaultError(f"'at': {exc}") from None
    if at_ms < 0:
        raise FaultError(f"'at' must not be negative, got {raw['at']!r}")
    trigger = parse_trigger(raw["after"]) if "after" in raw else None
    needs = read_requirement(raw)
    duration_ms = read_positive_duration(raw, "duration")
    params = kind.check(raw, duration_ms)
    duration_ms = kind.duration_ms(params, duration_ms)
    # A dynamic target (kafka-leader-most, ...) is resolved when the fault fires.
    kind.check_targets([t for t in targets if not is_dynamic(t)], params)
    label = raw.get("name", f"{name} {','.join(targets)}")
    if not isinstance(label, str):
        raise FaultError(f"'name' must be a string, got {label!r}")
    concurrent = raw.get("concurrent_with")
    if concurrent is not None and (not isinstance(concurrent, str) or not concurrent):
        raise FaultError(f"'concurrent_with' must name another fault of the scenario, got {concurrent!r}")
    return FaultSpec(
        index, label, name, tuple(targets), at_ms, duration_ms, params, trigger, concurrent, needs
    )


__all__ = [
    "DISRUPTIVE_KINDS",
    "KINDS",
    "LIFECYCLE_KINDS",
    "NETEM_KINDS",
    "NETWORK_KINDS",
    "FaultError",
    "FaultSpec",
    "parse_fault",
]
