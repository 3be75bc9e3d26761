"""Which batch executions count for a fault's "Spark re-ran" (tools/spark_reruns.py until_recovery): from
the fault's start to the end of the second it recovered in, or to the run's end; none outside the span."""

from __future__ import annotations

from tools.spark_reruns import Execution, Executions

T0 = 1_800_000_000_000  # epoch ms


def execution(at_ms: int, execution: int = 0, retried: int = 0) -> Execution:
    return Execution((T0 + at_ms) * 1000, "q", at_ms, execution, 4, retried)


SAVED = Executions(
    [
        execution(999, retried=1),
        execution(10_400, execution=1),
        execution(10_999, retried=2),
        execution(11_000),
    ],
    T0,
    T0 + 20_000,
)


def test_window_ends_with_the_second_it_recovered_in() -> None:
    # Recovered at +10.3 s: the window is [+1 s, +11 s): the replay and the two retried tasks, not +11.0 s.
    assert SAVED.until_recovery(T0 + 1000, T0 + 10_300, T0 + 20_000) == (
        "2 task(s) re-run in 1 batch(es), 1 whole batch(es) re-run"
    )
    assert SAVED.until_recovery(T0 + 11_000, T0 + 11_000, T0 + 20_000) == "nothing re-run"
    assert SAVED.until_recovery(T0 + 12_000, T0 + 12_500, T0 + 20_000) == "no batch committed"


def test_not_recovered_counts_to_the_run_end_within_the_span() -> None:
    assert SAVED.until_recovery(T0, None, T0 + 30_000) == (
        "3 task(s) re-run in 2 batch(es), 1 whole batch(es) re-run (until the run's end)"
    )
    assert (
        SAVED.until_recovery(T0 + 10_500, None, T0 + 11_000)
        == "2 task(s) re-run in 1 batch(es) (until the run's end)"
    )


def test_outside_the_span_is_not_measured() -> None:
    assert SAVED.until_recovery(T0 - 1, T0 + 5_000, T0 + 20_000) is None  # starts before what was read
    assert SAVED.until_recovery(T0 + 15_000, T0 + 20_000, T0 + 30_000) is None  # ends after it
