"""Recovery-time computation on synthetic per-second series (definition in tools/recovery.py)."""

from __future__ import annotations

import pytest

from tools.recovery import (
    FaultWindow,
    RecoveryParams,
    SecondStats,
    baseline_start_ms,
    cadence,
    make_baseline,
    overlaps,
    recover_faults,
    summarize_by_kind,
)

T0 = 1_800_000_000  # epoch seconds of the synthetic run's start
PARAMS = RecoveryParams()


def series(spec: list[tuple[int, int, int, float]]) -> list[SecondStats]:
    """spec: (from_s, to_s exclusive, rows per second, p99 ms) relative to T0."""
    out = []
    for a, b, rows, p99 in spec:
        out += [SecondStats(T0 + s, rows, p99 / 2, p99) for s in range(a, b) if rows > 0]
    return out


def fault(fid: str, kind: str, start_s: float, end_s: float | None) -> FaultWindow:
    return FaultWindow(
        fid, kind, "t", int((T0 + start_s) * 1000), None if end_s is None else int((T0 + end_s) * 1000)
    )


def run(
    data: list[SecondStats],
    faults: list[FaultWindow],
    end_s: int = 120,
    running: list[tuple[int, int]] | None = None,
) -> list:  # type: ignore[type-arg]
    baseline = make_baseline(data, 100.0, 6000, faults[0].start_ms, PARAMS)
    assert baseline is not None
    sessions = running if running is not None else [(T0 * 1000, (T0 + end_s) * 1000)]
    return recover_faults(faults, data, baseline, sessions, (T0 + end_s) * 1000, PARAMS)


def test_threshold_is_the_larger_of_double_and_plus_one_second() -> None:
    assert PARAMS.threshold_ms(100) == 1100
    assert PARAMS.threshold_ms(3000) == 6000


def test_outage_then_catch_up_then_steady() -> None:
    data = series([(0, 60, 100, 100), (70, 75, 400, 5000), (75, 120, 100, 100)])  # 60..69: nothing commits
    (r,) = run(data, [fault("f1", "kafka-kill", 60.0, 70.0)])
    assert r.recovery_s == 15.0  # healthy from second 75 on
    assert r.after_heal_s == 5.0
    assert r.peak_p99_ms == 5000
    assert r.recovered


def test_fault_start_inside_a_second_measures_from_the_fault_start() -> None:
    data = series([(0, 60, 100, 100), (70, 120, 100, 100)])
    (r,) = run(data, [fault("f1", "k", 60.4, 65.0)])
    assert r.recovery_s == pytest.approx(9.6)


def test_no_recovery_within_the_run() -> None:
    data = series([(0, 60, 100, 100), (60, 120, 100, 4000)])
    (r,) = run(data, [fault("f1", "pg-stop", 60.0, 70.0)])
    assert not r.recovered and r.recovery_s is None and r.after_heal_s is None
    assert r.peak_p99_ms == 4000


def test_recovery_needs_the_full_hold_window_inside_the_data() -> None:
    data = series([(0, 60, 100, 100), (60, 112, 100, 4000), (112, 120, 100, 100)])  # only 8 good seconds
    (r,) = run(data, [fault("f1", "k", 60.0, 70.0)])
    assert not r.recovered


def test_recovery_while_the_fault_is_still_active_gives_negative_time_after_heal() -> None:
    data = series([(0, 60, 100, 100), (60, 63, 100, 3000), (63, 120, 100, 100)])
    (r,) = run(data, [fault("f1", "broker-kill", 60.0, 90.0)])
    assert r.recovery_s == 3.0 and r.after_heal_s == -27.0


def test_unaffected_fault_recovers_in_zero_seconds() -> None:
    data = series([(0, 120, 100, 100)])
    (r,) = run(data, [fault("f1", "k", 60.5, 61.0)])
    assert r.recovery_s == 0.0


def test_producer_down_by_the_fault_is_not_a_recovery() -> None:
    # Producer killed at 60 and restarted at 70; its first rows commit at 72.
    data = series([(0, 60, 100, 100), (72, 120, 100, 100)])
    sessions = [(T0 * 1000, (T0 + 60) * 1000), ((T0 + 70) * 1000, (T0 + 120) * 1000)]
    (r,) = run(data, [fault("f1", "producer-kill", 60.0, 70.0)], running=sessions)
    assert r.recovery_s == 12.0


def test_no_commits_after_the_producer_stopped_for_good_is_healthy() -> None:
    # The producer ends at 80; a fault at 75..78 recovers once its effect is gone, not "never".
    data = series([(0, 75, 100, 100), (75, 77, 100, 3000), (77, 81, 100, 100)])
    sessions = [(T0 * 1000, (T0 + 80) * 1000)]
    (r,) = run(data, [fault("f1", "k", 75.0, 78.0)], end_s=100, running=sessions)
    assert r.recovery_s == 2.0


def test_outage_while_producer_is_running_is_unhealthy() -> None:
    data = series([(0, 60, 100, 100), (90, 120, 100, 100)])
    (r,) = run(data, [fault("f1", "k", 60.0, 65.0)])
    assert r.recovery_s == 30.0


def test_slow_commit_cadence_is_learnt_from_the_baseline() -> None:
    # Micro-batches land every 3 s: empty seconds between them are normal, not outages.
    spec = [(s, s + 1, 300, 200) for s in range(0, 120, 3)]
    data = series(spec)
    assert cadence(data, T0, T0 + 60) == 3
    (r,) = run(data, [fault("f1", "k", 60.0, 61.0)])
    assert r.recovery_s == 0.0


def test_summary_per_kind() -> None:
    data = series(
        [(0, 60, 100, 100), (60, 65, 100, 3000), (65, 80, 100, 100), (80, 90, 100, 3000), (90, 200, 100, 100)]
    )
    faults = [
        fault("a", "kill", 60.0, 61.0),
        fault("b", "kill", 80.0, 81.0),
        fault("c", "pause", 100.0, 101.0),
    ]
    recs = run(data, faults, end_s=200)
    assert [r.recovery_s for r in recs] == [5.0, 10.0, 0.0]
    kinds = {k.kind: k for k in summarize_by_kind(recs)}
    assert (kinds["kill"].min_s, kinds["kill"].median_s, kinds["kill"].max_s) == (5.0, 7.5, 10.0)
    assert kinds["pause"].recovered == 1 and kinds["kill"].faults == 2


def test_no_baseline_without_rows_before_the_first_fault() -> None:
    assert make_baseline([], None, 0, T0 * 1000, PARAMS) is None


def test_baseline_window_is_clipped_to_the_run_start() -> None:
    first = (T0 + 30) * 1000
    assert baseline_start_ms(first, PARAMS) == (T0 - 30) * 1000
    assert baseline_start_ms(first, PARAMS, run_start_ms=T0 * 1000) == T0 * 1000
    assert baseline_start_ms(first, PARAMS, run_start_ms=(T0 - 500) * 1000) == (T0 - 30) * 1000
    data = series([(0, 60, 100, 100)])
    baseline = make_baseline(data, 100.0, 3000, first, PARAMS, run_start_ms=T0 * 1000)
    assert baseline is not None and baseline.window_start_ms == T0 * 1000


def test_overlapping_faults_are_named() -> None:
    data = series([(0, 60, 100, 100), (60, 70, 100, 3000), (70, 200, 100, 100)])
    faults = [
        fault("a", "kill", 60.0, 62.0),  # recovers at 70
        fault("b", "pause", 65.0, 66.0),  # a ended, but had not recovered yet
        fault("c", "pause", 100.0, None),  # nothing open any more
        fault("d", "kill", 150.0, 151.0),  # c never recorded an end
    ]
    assert overlaps(run(data, faults, end_s=200)) == {"a": [], "b": ["a"], "c": [], "d": ["c"]}


def test_peak_latency_covers_the_fault_even_when_it_had_no_effect_at_first() -> None:
    data = series([(0, 60, 100, 100), (60, 64, 100, 900), (64, 120, 100, 100)])  # below the threshold
    (r,) = run(data, [fault("f1", "k", 60.0, 66.0)])
    assert r.recovery_s == 0.0 and r.peak_p99_ms == 900


def test_a_fault_whose_effect_comes_late_has_not_recovered_before_it() -> None:
    # A 30 s pause: the sink's backlog keeps the first 12 s healthy, then commits stop until the end.
    data = series([(0, 72, 100, 100), (90, 120, 100, 100)])
    (r,) = run(data, [fault("f1", "pause", 60.0, 90.0)])
    assert r.recovery_s == 30.0 and r.after_heal_s == 0.0
    # The same degradation after the fault ended is another story: recovered in 0 s, before it.
    (early,) = run(series([(0, 120, 100, 100)]), [fault("f2", "pause", 60.0, 90.0)])
    assert early.recovery_s == 0.0
