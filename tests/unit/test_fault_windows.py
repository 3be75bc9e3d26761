"""Reading timeline.jsonl (the chaos injector's output) into fault windows."""

from __future__ import annotations

import json
from pathlib import Path

from tools.run.timeline import read_faults


def test_reads_ms_fields_iso_fallback_null_end_and_skips_torn_lines(tmp_path: Path) -> None:
    records = [
        {"fault_id": "b", "kind": "pause", "target": "spark", "params": {"d": "5s"}, "executor": "pumba",
         "start": "2027-01-15T08:00:10.000Z", "end": "2027-01-15T08:00:15.500Z", "outcome": "ok"},
        {"fault_id": "a", "kind": "kill", "target": "kafka-2", "params": {}, "executor": "docker",
         "start": "ignored", "start_ms": 1_800_000_005_000, "end": None, "end_ms": None,
         "outcome": "interrupted"},
        {"fault_id": "c", "kind": "kill"},
    ]  # fmt: skip
    text = "".join(json.dumps(r) + "\n" for r in records) + "\n" + '{"fault_id": "d", "ki'
    (tmp_path / "timeline.jsonl").write_text(text)
    faults, notes = read_faults(tmp_path)
    assert [f.window.fault_id for f in faults] == ["a", "b"]  # sorted by start
    a, b = faults
    assert (a.window.start_ms, a.window.end_ms, a.outcome) == (1_800_000_005_000, None, "interrupted")
    assert (b.window.start_ms, b.window.end_ms) == (1_800_000_010_000, 1_800_000_015_500)
    assert b.params == {"d": "5s"} and b.executor == "pumba" and b.window.target == "spark"
    assert notes == ["timeline.jsonl line 3 skipped (no start time)", notes[1]]
    assert notes[1].startswith("timeline.jsonl line 5 skipped")


def test_no_timeline_is_no_faults(tmp_path: Path) -> None:
    assert read_faults(tmp_path) == ([], [])


def test_what_the_target_did_is_read_from_the_observed_call_lines(tmp_path: Path) -> None:
    # A disk fill's undo records the target's state and log lines; the report's rows show them.
    from tools.report.render import _with_observed

    calls = [
        "fallocate /v/.b until 0B is free on /v",
        "observed: chaosbed-kafka-1 exited (exit code 1)",
        "observed: log: Shutdown broker because all log dirs in /var/lib/kafka/data have failed",
        "rm /v/.b",
        "POST /containers/abc/start",
    ]
    record = {"fault_id": "r/01", "kind": "disk fill", "target": "kafka-1", "start_ms": 1, "end_ms": 2}
    record["call"] = calls
    (tmp_path / "timeline.jsonl").write_text(json.dumps(record) + "\n")
    [fault], _ = read_faults(tmp_path)
    assert fault.observed == [
        "chaosbed-kafka-1 exited (exit code 1)",
        "log: Shutdown broker because all log dirs in /var/lib/kafka/data have failed",
    ]
    cell = _with_observed("ok", fault.observed)
    assert cell.startswith("ok; target: chaosbed-kafka-1 exited (exit code 1); log: Shutdown broker")
    assert _with_observed("", ["a | b"]) == "target: a \\| b" and _with_observed("ok", []) == "ok"
