"""run.json creation, merging and run-directory resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import rundir
from tools.errors import ToolError


def test_create_run_records_flags_and_defaults(tmp_path: Path) -> None:
    path = rundir.create_run(
        tmp_path,
        "r1",
        bootstrap_servers="b:9092",
        postgres_dsn="host=x passfile=/p",
        versions={"kafka": "4.0"},
    )
    data = json.loads((path / "run.json").read_text())
    assert path == tmp_path / "r1"
    assert data["run_id"] == "r1" and data["bootstrap_servers"] == "b:9092"
    assert data["topic"] == "events" and data["sink_table"] == "events" and data["profile"] == "safe"
    assert data["ended_at"] is None and data["versions"] == {"kafka": "4.0"}
    assert rundir.ms_from_iso(data["started_at"]) > 0 and data["started_at"].endswith("Z")
    assert (path / "run.json").stat().st_mode & 0o777 == 0o644


def test_create_run_merges_into_an_existing_run(tmp_path: Path) -> None:
    rundir.create_run(tmp_path, "r1", topic="t1", settings={"a": {"x": 1}}, profile="unsafe-sink")
    started = rundir.load_run(tmp_path / "r1")["started_at"]
    rundir.create_run(tmp_path, "r1", bootstrap_servers="b", settings={"a": {"y": 2}})
    data = rundir.load_run(tmp_path / "r1")
    assert data["topic"] == "t1" and data["profile"] == "unsafe-sink" and data["bootstrap_servers"] == "b"
    assert data["settings"] == {"a": {"x": 1, "y": 2}}
    assert data["started_at"] == started


def test_inline_password_makes_run_json_private(tmp_path: Path) -> None:
    path = rundir.create_run(tmp_path, "r1", postgres_dsn="host=x password=secret")
    assert (path / "run.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("bad", ["", "../x", "a b", "-x", "x" * 200])
def test_invalid_run_ids(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ToolError, match="invalid run id"):
        rundir.create_run(tmp_path, bad)


def test_invalid_sink_table(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="invalid sink table"):
        rundir.create_run(tmp_path, "r1", sink_table="users; drop")


def test_resolve_variants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = rundir.create_run(tmp_path / "runs", "r1")
    assert rundir.resolve(run, None, None) == run
    assert rundir.resolve(None, tmp_path / "runs", "r1") == tmp_path / "runs" / "r1"
    assert rundir.resolve(None, run, None) == run  # --run-dir pointing at the run itself
    monkeypatch.chdir(tmp_path)
    assert rundir.resolve(Path("r1"), None, None) == Path("runs") / "r1"  # a bare run id under runs/
    with pytest.raises(ToolError, match="no run at"):
        rundir.resolve(None, tmp_path / "runs", "nope")
    with pytest.raises(ToolError, match="no run given"):
        rundir.resolve(None, tmp_path / "elsewhere", None)


def test_corrupt_run_json(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(ToolError, match="unreadable"):
        rundir.load_run(tmp_path)
    (tmp_path / "run.json").write_text("[]")
    with pytest.raises(ToolError, match="corrupt"):
        rundir.load_run(tmp_path)


def test_iso_round_trip() -> None:
    assert rundir.iso_from_ms(1_800_000_000_123) == "2027-01-15T08:00:00.123Z"
    assert rundir.ms_from_iso("2027-01-15T08:00:00.123Z") == 1_800_000_000_123
    assert rundir.ms_from_iso("2027-01-15T08:00:00.123") == 1_800_000_000_123  # naive = UTC
