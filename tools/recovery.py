"""Recovery time per fault, from per-second sink aggregates and the producer's activity.

THE definition (one for every fault kind, written out in docs/checker.md; the report quotes
RecoveryParams.describe()):

* Per second s (bucketed by committed_at) the sink gives n(s), the rows committed, and p99(s), the
  99th percentile of end-to-end latency committed_at - produced_at of those rows.
* baseline p99 = p99 latency of all rows committed in the `baseline_s` seconds (default 60) before
  the first fault starts. threshold = max(factor x baseline p99, baseline p99 + slack), defaults
  factor 2 and slack 1 s.
* cadence c = the longest spacing between consecutive seconds with commits in that baseline window
  (1 when rows land every second; larger when micro-batches land every few seconds).
* Second s is healthy, for a given fault, when the seconds (s - c, s] hold commits and each of
  those seconds has p99 <= threshold; or when they hold no commits, the producer was not running
  at s (per the ledger's sessions, heartbeats included) so nothing was due, and the fault has
  ended (a producer that is down because of the fault itself is not a recovery).
* Recovery time of a fault = R - fault start, where R is the first second >= the fault's start such
  that every second of [R, R + hold) is healthy (hold default 10 s, at least 2c), and so is every
  second from R until the fault ends (a pipeline that degrades late in a long fault has not recovered
  before it), and the run's data covers that window; 0 if the pipeline never left the healthy state.
* Time after heal = R - fault end (negative: it recovered while the fault was still active; the report
  says so in words, and "no degradation" when the recovery time is 0).
* No such R: "did not recover within the run".
"""

from __future__ import annotations

import math
import re
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise


@dataclass(frozen=True)
class SecondStats:
    sec: int  # epoch seconds (bucket start)
    rows: int
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class FaultWindow:
    fault_id: str
    kind: str
    target: str
    start_ms: int
    end_ms: int | None  # None: the injector never recorded the end (it crashed)


@dataclass(frozen=True)
class RecoveryParams:
    hold_s: int = 10
    baseline_s: int = 60
    factor: float = 2.0
    slack_ms: float = 1000.0

    def threshold_ms(self, baseline_p99_ms: float) -> float:
        return max(self.factor * baseline_p99_ms, baseline_p99_ms + self.slack_ms)

    def describe(self) -> str:
        return (
            f"baseline = p99 end-to-end latency (committed_at - produced_at) of the rows committed in the "
            f"{self.baseline_s} s before the first fault; threshold = max({self.factor:g} x baseline, "
            f"baseline + {self.slack_ms / 1000:g} s). A second is healthy when the last c seconds (c = the "
            f"baseline's commit cadence) hold commits whose per-second p99 is within the threshold, or hold "
            f"none while the producer was not running after the fault ended. Recovery time = from the "
            f"fault's start to the first second that begins {self.hold_s} s (at least 2c) of consecutive "
            f"healthy seconds lasting at least until the fault ended; time after heal"
            f" = recovery moment - fault end; no such second in the data = "
            f"did not recover within the run."
        )


@dataclass(frozen=True)
class Baseline:
    p99_ms: float
    threshold_ms: float
    cadence_s: int
    rows: int
    window_start_ms: int
    window_end_ms: int


@dataclass(frozen=True)
class FaultRecovery:
    fault: FaultWindow
    recovered_at_ms: int | None
    recovery_s: float | None
    after_heal_s: float | None
    peak_p99_ms: float | None  # worst per-second p99 from the fault's start to recovery (or data end)

    @property
    def recovered(self) -> bool:
        return self.recovered_at_ms is not None


@dataclass(frozen=True)
class KindSummary:
    kind: str
    service: str  # the target's service without its instance number: kafka-2 -> kafka
    faults: int
    recovered: int
    min_s: float | None
    median_s: float | None
    max_s: float | None


def cadence(series: Sequence[SecondStats], start_sec: int, end_sec: int) -> int:
    """Longest spacing between consecutive seconds with commits in [start_sec, end_sec)."""
    secs = [s.sec for s in series if start_sec <= s.sec < end_sec and s.rows > 0]
    gaps = [b - a for a, b in pairwise(secs)]
    return max([1, *gaps])


def baseline_start_ms(first_fault_ms: int, params: RecoveryParams, run_start_ms: int | None = None) -> int:
    """The baseline window starts baseline_s before the first fault, but not before the run."""
    start = first_fault_ms - params.baseline_s * 1000
    return start if run_start_ms is None else max(start, min(run_start_ms, first_fault_ms))


def make_baseline(
    series: Sequence[SecondStats],
    p99_ms: float | None,
    rows: int,
    first_fault_ms: int,
    params: RecoveryParams,
    run_start_ms: int | None = None,
) -> Baseline | None:
    """None when nothing was committed before the first fault (no baseline to recover to)."""
    if p99_ms is None or rows == 0:
        return None
    start_ms = baseline_start_ms(first_fault_ms, params, run_start_ms)
    return Baseline(
        p99_ms=p99_ms,
        threshold_ms=params.threshold_ms(p99_ms),
        cadence_s=cadence(series, math.floor(start_ms / 1000), math.floor(first_fault_ms / 1000)),
        rows=rows,
        window_start_ms=start_ms,
        window_end_ms=first_fault_ms,
    )


class _Activity:
    """Producer running intervals [start_ms, end_ms], sorted, for point queries."""

    def __init__(self, intervals: Sequence[tuple[int, int]]) -> None:
        merged: list[tuple[int, int]] = []
        for a, b in sorted(intervals):
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        self.starts = [a for a, _ in merged]
        self.ends = [b for _, b in merged]

    def running_during(self, a_ms: int, b_ms: int) -> bool:
        """Any overlap of [a_ms, b_ms) with a running interval."""
        i = bisect_right(self.starts, b_ms - 1) - 1
        return i >= 0 and self.ends[i] >= a_ms


def second_states(
    series: Sequence[SecondStats],
    first_sec: int,
    last_sec: int,
    baseline: Baseline,
    producer_running: Sequence[tuple[int, int]],
) -> tuple[list[bool | None], list[bool]]:
    """Per second from first_sec: (latency_ok, idle).

    latency_ok is None when (s - c, s] holds no commits, else whether every one of those seconds
    has p99 <= threshold; idle says the producer was not running during second s.
    """
    by_sec = {s.sec: s for s in series}
    activity = _Activity(producer_running)
    c = baseline.cadence_s
    latency_ok: list[bool | None] = []
    idle: list[bool] = []
    for sec in range(first_sec, last_sec + 1):
        window = [by_sec[t] for t in range(sec - c + 1, sec + 1) if t in by_sec and by_sec[t].rows > 0]
        if window:
            latency_ok.append(all(w.p99_ms is not None and w.p99_ms <= baseline.threshold_ms for w in window))
        else:
            latency_ok.append(None)
        idle.append(not activity.running_during(sec * 1000, (sec + 1) * 1000))
    return latency_ok, idle


def recover_faults(
    faults: Sequence[FaultWindow],
    series: Sequence[SecondStats],
    baseline: Baseline,
    producer_running: Sequence[tuple[int, int]],
    data_end_ms: int,
    params: RecoveryParams,
) -> list[FaultRecovery]:
    """Recovery of every fault (independently, each from its own start)."""
    if not faults:
        return []
    first_sec = min([math.floor(f.start_ms / 1000) for f in faults] + [s.sec for s in series[:1]])
    last_sec = math.floor(data_end_ms / 1000)
    latency_ok, idle = second_states(series, first_sec, last_sec, baseline, producer_running)
    hold = max(params.hold_s, 2 * baseline.cadence_s)
    secs = [s.sec for s in series]
    out = []
    for fault in faults:
        # Idle seconds count as healthy only once this fault is over (see the module docstring).
        healed_idx = math.inf if fault.end_ms is None else math.ceil(fault.end_ms / 1000) - first_sec
        healthy = [ok if ok is not None else (idle[i] and i >= healed_idx) for i, ok in enumerate(latency_ok)]
        # run[i] = number of consecutive healthy seconds starting at second first_sec + i.
        run = [0] * (len(healthy) + 1)
        for i in range(len(healthy) - 1, -1, -1):
            run[i] = run[i + 1] + 1 if healthy[i] else 0
        start_idx = math.floor(fault.start_ms / 1000) - first_sec
        # The healthy stretch lasts `hold` seconds and through the fault's last second.
        rec_idx = next(
            (i for i in range(start_idx, len(healthy)) if run[i] >= max(hold, healed_idx - i)), None
        )
        recovered_ms = None
        if rec_idx is not None:
            recovered_ms = max((first_sec + rec_idx) * 1000, fault.start_ms)
        # Worst latency while the fault was active and until it recovered.
        peak_end = max(recovered_ms or data_end_ms, fault.end_ms or fault.start_ms) // 1000
        lo, hi = bisect_left(secs, math.floor(fault.start_ms / 1000)), bisect_right(secs, peak_end)
        p99s = [s.p99_ms for s in series[lo:hi] if s.p99_ms is not None]
        out.append(
            FaultRecovery(
                fault=fault,
                recovered_at_ms=recovered_ms,
                recovery_s=None if recovered_ms is None else (recovered_ms - fault.start_ms) / 1000,
                after_heal_s=None
                if recovered_ms is None or fault.end_ms is None
                else (recovered_ms - fault.end_ms) / 1000,
                peak_p99_ms=max(p99s) if p99s else None,
            )
        )
    return out


def overlaps(recoveries: Sequence[FaultRecovery]) -> dict[str, list[str]]:
    """For each fault, the earlier faults still active or not yet recovered when it began: its
    recovery time then includes their effect."""
    out: dict[str, list[str]] = {}
    for r in recoveries:
        start = r.fault.start_ms
        out[r.fault.fault_id] = [
            e.fault.fault_id
            for e in recoveries
            if e is not r
            and e.fault.start_ms <= start
            and (e.fault.start_ms, e.fault.fault_id) < (start, r.fault.fault_id)
            and (
                e.fault.end_ms is None
                or e.fault.end_ms > start
                or e.recovered_at_ms is None
                or e.recovered_at_ms > start
            )
        ]
    return out


def service_of(target: str) -> str:
    """The service a target belongs to: kafka-2 -> kafka, kafka-controller-1 -> kafka-controller."""
    return re.sub(r"-\d+$", "", target) or target


def summarize_by_kind(recoveries: Sequence[FaultRecovery]) -> list[KindSummary]:
    """Statistics per (kind, service): a broker kill and a Spark kill recover differently."""
    groups: dict[tuple[str, str], list[FaultRecovery]] = {}
    for r in recoveries:
        groups.setdefault((r.fault.kind, service_of(r.fault.target)), []).append(r)
    out = []
    for (kind, service), items in sorted(groups.items()):
        times = [r.recovery_s for r in items if r.recovery_s is not None]
        out.append(
            KindSummary(
                kind=kind,
                service=service,
                faults=len(items),
                recovered=len(times),
                min_s=min(times) if times else None,
                median_s=statistics.median(times) if times else None,
                max_s=max(times) if times else None,
            )
        )
    return out
