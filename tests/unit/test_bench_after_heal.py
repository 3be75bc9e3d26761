"""The bench table's recovery row never prints a negative duration after the service returned."""

from __future__ import annotations

from benchmarks.bench import _recovery_rows, spread


def row(after_heal_s: list[float]) -> str:
    recovery_s = [3.1, 3.1, 4.1]
    classes = {
        "broker disk fill": {
            "faults": 3,
            "recovered": 3,
            "recovery": spread(recovery_s),
            "recovery_s": recovery_s,
            "after_heal": spread(after_heal_s),
            "after_heal_s": after_heal_s,
        }
    }
    return _recovery_rows({"classes": classes})[0][1]


def test_recovered_while_the_service_was_down_is_said_in_words() -> None:
    value = row([-57.3, -57.3, -56.3])
    assert value.endswith("; every one recovered before the service returned")
    assert "-5" not in value


def test_positive_figures_are_given_and_early_ones_counted() -> None:
    assert row([1.5, 2.0, 2.5]).endswith("after the service returned: worst 2.5 s, median 2 s")
    mixed = row([-3.0, 1.0, 2.0])
    assert mixed.endswith("worst 2 s, median 1 s (1 recovered before it returned)")
