"""The schedule: one action per (fault, target), in start order, plus the checks that need the whole plan."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tools.chaos.durations import format_duration, format_offset
from tools.chaos.faults import FaultSpec
from tools.chaos.kinds import CONFLICT_GROUPS, DISRUPTIVE_KINDS


@dataclass(frozen=True)
class Action:
    """One fault on one target: the unit the runner executes, journals and writes a timeline line for."""

    number: int  # 1-based position in the schedule
    fault: FaultSpec
    service: str
    not_applicable: str | None = None  # why it does nothing on this Spark deployment (deployment.gate)

    @property
    def short_id(self) -> str:
        return f"{self.number:02d}-{self.service}"

    def fault_id(self, run_id: str) -> str:
        # Unique across runs, so restore of one run never touches another run's rules.
        return f"{run_id}/{self.short_id}"

    @property
    def kind(self) -> str:
        return self.fault.kind

    @property
    def at_ms(self) -> int:
        return self.fault.at_ms

    def end_ms(self, phase_ms: int) -> int:
        """The latest it can end (a triggered fault may start up to its wait after `at`)."""
        window = self.fault.window_ms
        return phase_ms if window is None else self.fault.at_ms + self.fault.wait_ms + window


@dataclass(frozen=True)
class Schedule:
    name: str
    actions: tuple[Action, ...]
    phase_ms: int  # the chaos phase length; faults without their own end are restored here
    seed: int | None = None
    spark_deploy: str | None = None  # the run's Spark deployment; None: not known (chaos/deployment.py)
    fixed_phase: bool = False  # the length was given (`duration`, --duration), not the last fault's end

    def describe(self) -> list[dict[str, object]]:
        """The plan as data (for `plan --json` and the summary)."""
        rows = []
        for action in self.actions:
            window = action.fault.window_ms
            trigger = action.fault.trigger
            rows.append(
                {
                    "number": action.number,
                    "id": action.short_id,
                    "name": action.fault.name,
                    "fault_index": action.fault.index,
                    "kind": action.kind,
                    "target": action.service,
                    "at": format_offset(action.at_ms),
                    "at_ms": action.at_ms,
                    # A triggered fault fires on a pipeline event at or after `at` (tools/chaos/triggers.py).
                    "trigger": trigger.describe() if trigger else None,
                    "after": trigger.as_dict() if trigger else None,
                    "until": format_offset(action.end_ms(self.phase_ms)),
                    "until_ms": action.end_ms(self.phase_ms),
                    "held_until_end": window is None,
                    "concurrent_with": action.fault.concurrent_with,
                    "spark_deploy": action.fault.spark_deploy,
                    "not_applicable": action.not_applicable,
                    "params": action.fault.params,
                }
            )
        return rows


def build_schedule(
    name: str, faults: Iterable[FaultSpec], phase_ms: int | None, seed: int | None = None
) -> Schedule:
    """Expand faults into actions ordered by start time; the phase ends after the last timed fault."""
    pairs = sorted(
        ((fault, service) for fault in faults for service in fault.targets),
        key=lambda pair: (pair[0].at_ms, pair[0].index, pair[1]),
    )
    actions = tuple(Action(number, fault, service) for number, (fault, service) in enumerate(pairs, start=1))
    fixed = phase_ms is not None
    return Schedule(name, actions, phase_ms if fixed else last_end_ms(actions), seed, fixed_phase=fixed)


def last_end_ms(actions: Iterable[Action]) -> int:
    """Where a phase with no given length ends: after the last fault that is applied."""
    ends = [a.at_ms + a.fault.wait_ms + (a.fault.window_ms or 0) for a in actions if not a.not_applicable]
    return max(ends, default=0)


@dataclass(frozen=True)
class _Busy:
    fault: FaultSpec
    service: str
    start: int
    end: int


def _busy(faults: Iterable[FaultSpec], phase_ms: int, kinds: Iterable[str], gap_ms: int = 0) -> list[_Busy]:
    wanted = frozenset(kinds)
    out = []
    for fault in faults:
        if fault.kind not in wanted:
            continue
        window = fault.window_ms
        end = max(phase_ms, fault.at_ms) if window is None else fault.at_ms + fault.wait_ms + window
        out.extend(_Busy(fault, service, fault.at_ms, end + gap_ms) for service in fault.targets)
    return out


def _describe(fault: FaultSpec) -> str:
    return f"fault #{fault.index} ({fault.name})"


def check_conflicts(faults: list[FaultSpec], phase_ms: int) -> str | None:
    """Two faults of one conflict group (e.g. two lifecycle faults) on one target at once cannot both
    work: refuse them. Each kind names its group (tools/chaos/kinds/)."""
    for kinds, why in CONFLICT_GROUPS:
        busy = _busy(faults, phase_ms, kinds)
        for i, first in enumerate(busy):
            for second in busy[i + 1 :]:
                if first.service == second.service and first.start < second.end and second.start < first.end:
                    later, earlier = (
                        (second, first) if second.fault.index > first.fault.index else (first, second)
                    )
                    return (
                        f"{_describe(later.fault)} overlaps {_describe(earlier.fault)} on {first.service!r}: "
                        f"{why} cannot both take effect"
                    )
    return None


def brokers_down_peak(
    faults: list[FaultSpec], phase_ms: int, is_broker: Callable[[str], bool], gap_ms: int = 0
) -> tuple[int, FaultSpec | None]:
    """The largest number of distinct brokers disrupted at one instant, and a fault that reaches it."""
    busy = [b for b in _busy(faults, phase_ms, DISRUPTIVE_KINDS, gap_ms) if is_broker(b.service)]
    peak, culprit = 0, None
    for point in busy:
        down = {b.service for b in busy if b.start <= point.start < b.end}
        if len(down) > peak:
            peak, culprit = len(down), point.fault
    return peak, culprit


def check_quorum(
    faults: list[FaultSpec], phase_ms: int, is_broker: Callable[[str], bool], max_down: int, gap_ms: int = 0
) -> str | None:
    peak, culprit = brokers_down_peak(faults, phase_ms, is_broker, gap_ms)
    if peak > max_down and culprit is not None:
        return (
            f"{_describe(culprit)} takes down {peak} Kafka brokers at once (with a {format_duration(gap_ms)} "
            f"recovery gap), more than replication factor minus min.insync.replicas allows ({max_down}); "
            "set 'allow_quorum_loss: true' to do it anyway"
        )
    return None
