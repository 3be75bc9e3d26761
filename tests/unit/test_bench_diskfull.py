"""benchmarks/diskfull.py: the diskfull section's scenario (a broker's log dir full, one broker at a time,
in a scenario the chaos tools accept) and its table row."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks import diskfull  # noqa: E402
from tools.chaos.config import ChaosConfig  # noqa: E402
from tools.chaos.scenario import load_scenario  # noqa: E402


def test_each_broker_in_turn_is_full_for_the_asked_time(tmp_path: Path) -> None:
    path = tmp_path / "diskfull.yml"
    path.write_text(yaml.safe_dump(diskfull.scenario(60, 3), sort_keys=False))
    actions = load_scenario(path, ChaosConfig()).schedule.actions
    assert [(a.kind, a.service) for a in actions] == [("disk fill", f"kafka-{n}") for n in (1, 2, 3)]
    assert {(a.fault.params["free_bytes"], a.fault.hold_ms) for a in actions} == {(0, 60_000)}
    ends = [a.at_ms + 60_000 for a in actions]
    assert all(end < nxt for end, nxt in zip(ends, [a.at_ms for a in actions][1:], strict=False))


def test_the_row_says_whether_the_broker_stopped_and_whether_anything_was_lost() -> None:
    observed = {
        "r/01": ["chaosbed-kafka-1 exited (exit code 1) at t", "log: No space left"],
        "r/02": ["kept running"],
    }
    [row] = diskfull.table_rows({"observed": observed, "missing": 0, "duplicate": 0, "seconds": 60})
    assert row == (
        "disk full: broker log dir full 60 s (2 injections)",
        "broker stopped in 1 of 2; missing 0, duplicate 0 after validation",
        "nothing acknowledged lost",
        "yes",
    )
    assert diskfull.table_rows({"observed": observed, "missing": 1, "duplicate": 0})[0][3] == "**no**"
