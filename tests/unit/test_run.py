"""tools/run: run ids, the layout and runs root, run.json, the time format, the timeline round trip."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tools.errors import ToolError
from tools.run import clock, layout, meta, timeline


def test_create_run_records_flags_and_defaults(tmp_path: Path) -> None:
    path = meta.create_run(
        tmp_path / "r1",
        bootstrap_servers="b:9092",
        postgres_dsn="host=x passfile=/p",
        versions={"kafka": "4.0"},
    )
    data = json.loads((path / "run.json").read_text())
    assert path == tmp_path / "r1"
    assert data["run_id"] == "r1" and data["bootstrap_servers"] == "b:9092"
    assert data["topic"] == "events" and data["sink_table"] == "events" and data["profile"] == "safe"
    assert data["ended_at"] is None and data["versions"] == {"kafka": "4.0"}
    assert clock.ms_from_iso(data["started_at"]) > 0 and data["started_at"].endswith("Z")
    assert (path / "run.json").stat().st_mode & 0o777 == 0o644


def test_create_run_merges_into_an_existing_run(tmp_path: Path) -> None:
    meta.create_run(tmp_path / "r1", topic="t1", settings={"a": {"x": 1}}, profile="unsafe-sink")
    started = meta.load_run(tmp_path / "r1")["started_at"]
    meta.create_run(tmp_path / "r1", bootstrap_servers="b", settings={"a": {"y": 2}})
    data = meta.load_run(tmp_path / "r1")
    assert data["topic"] == "t1" and data["profile"] == "unsafe-sink" and data["bootstrap_servers"] == "b"
    assert data["settings"] == {"a": {"x": 1, "y": 2}}
    assert data["started_at"] == started


def test_inline_password_makes_run_json_private(tmp_path: Path) -> None:
    path = meta.create_run(tmp_path / "r1", postgres_dsn="host=x password=secret")
    assert (path / "run.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("bad", ["", "../x", "a b", "-x", "x" * 200])
def test_invalid_run_ids(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ToolError, match="invalid run id"):
        layout.new_run_dir(None, bad, tmp_path, "label")


@pytest.mark.parametrize("bad", ["a b", "-x", "x" * 200])
def test_a_run_directory_is_named_by_a_valid_run_id(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ToolError, match="invalid run directory"):
        meta.create_run(tmp_path / bad)


def test_invalid_sink_table(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="invalid sink table"):
        meta.create_run(tmp_path / "r1", sink_table="users; drop")


def test_find_run_variants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(layout.RUNS_ROOT_ENV, raising=False)
    run = meta.create_run(tmp_path / "runs" / "r1")
    assert layout.find_run(run, None, None, None) == run  # positional: the run directory
    assert layout.find_run(None, run, None, None) == run  # --run-dir: the run itself
    assert layout.find_run(None, None, "r1", tmp_path / "runs") == run  # --run-id under --runs-root
    monkeypatch.chdir(tmp_path)
    assert layout.find_run(Path("r1"), None, None, None) == Path("runs") / "r1"  # a bare run id under runs/
    with pytest.raises(ToolError, match="no run at"):
        layout.find_run(None, None, "nope", tmp_path / "runs")
    with pytest.raises(ToolError, match="no run given"):
        layout.find_run(None, None, None, tmp_path / "elsewhere")
    with pytest.raises(ToolError, match="give one of"):
        layout.find_run(run, None, "r1", None)


def test_runs_root_from_option_then_env_then_default(tmp_path: Path) -> None:
    assert layout.runs_root(None, {}) == Path("runs")
    assert layout.runs_root(None, {"CHAOSBED_RUNS_ROOT": str(tmp_path)}) == tmp_path
    assert layout.runs_root(tmp_path / "x", {"CHAOSBED_RUNS_ROOT": str(tmp_path)}) == tmp_path / "x"
    assert layout.RUNS_ROOT_ENV == "CHAOSBED_RUNS_ROOT"


def test_new_run_ids_are_utc_time_and_label(tmp_path: Path) -> None:
    run_id = layout.new_run_id("ci", ms=1_800_000_000_123)
    assert run_id == "20270115T080000Z-ci"
    assert re.fullmatch(r"\d{8}T\d{6}Z-my_faults.yml", layout.new_run_id("my faults.yml"))
    made = layout.new_run_dir(None, None, tmp_path, "produce")
    assert made.parent == tmp_path and re.fullmatch(r"\d{8}T\d{6}Z-produce", made.name)
    assert layout.new_run_dir(tmp_path / "r2", None, None, "x") == tmp_path / "r2"
    assert layout.new_run_dir(None, "r3", tmp_path, "x") == tmp_path / "r3"
    with pytest.raises(ToolError, match="not both"):
        layout.new_run_dir(tmp_path / "r2", "r3", None, "x")
    assert layout.run_id_of(tmp_path / "r2") == "r2"


def test_corrupt_run_json(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(ToolError, match="unreadable"):
        meta.load_run(tmp_path)
    (tmp_path / "run.json").write_text("[]")
    with pytest.raises(ToolError, match="corrupt"):
        meta.load_run(tmp_path)


def test_iso_round_trip() -> None:
    assert clock.iso_from_ms(1_800_000_000_123) == "2027-01-15T08:00:00.123Z"
    assert clock.iso_from_ms(1_800_000_000_999) == "2027-01-15T08:00:00.999Z"
    assert clock.ms_from_iso("2027-01-15T08:00:00.123Z") == 1_800_000_000_123
    assert clock.ms_from_iso("2027-01-15T08:00:00.123") == 1_800_000_000_123  # naive = UTC


def test_timeline_round_trip(tmp_path: Path) -> None:
    writer = timeline.Timeline(tmp_path)
    start, end = 1_800_000_000_123, 1_800_000_010_456
    writer.append(
        timeline.line(
            fault_id="r/0-pause",
            kind="pause",
            target="kafka-1",
            container="chaosbed-kafka-1",
            params={"duration": "10s"},
            executor="docker",
            call=["pause"],
            start_ms=start,
            end_ms=end,
            outcome=timeline.OK,
        )
    )
    killed_line = {"fault_id": "r/1-kill", "kind": "kill", "target": "spark"}
    killed_line["start"] = clock.iso_from_ms(start)
    writer.append(killed_line | {"outcome": timeline.failed("no such container")})
    assert writer.written_ids() == {"r/0-pause", "r/1-kill"}
    assert (tmp_path / layout.TIMELINE_FILE).exists()
    [raw, _] = timeline.read_timeline(tmp_path)
    assert raw["start"] == "2027-01-15T08:00:00.123Z" and raw["end_ms"] == end
    faults, notes = timeline.read_faults(tmp_path)
    assert notes == []
    paused, killed = faults
    assert (paused.window.start_ms, paused.window.end_ms, paused.applied) == (start, end, True)
    assert paused.params == {"duration": "10s"} and paused.executor == "docker"
    assert killed.window.end_ms is None and not killed.applied
    assert timeline.is_failure(killed.outcome)
