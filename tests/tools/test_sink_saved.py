"""At an experiment's end the sink's figures for the run are saved in its directory; a database that does
not answer is one warning line and the run carries on."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tools.experiment.experiment import ExperimentResult, ExperimentSpec, _save_sink
from tools.run.clock import ms_from_iso
from tools.run.layout import SINK_DATA_FILE
from tools.run.meta import create_run, load_run


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


def _run(tmp_path: Path, dsn: str) -> tuple[Path, ExperimentSpec]:
    run_dir = tmp_path / "20261204T000000Z-test"
    run_dir.mkdir()
    create_run(run_dir, bootstrap_servers="127.0.0.1:9092", topic="events", postgres_dsn=dsn)
    return run_dir, ExperimentSpec(scenario="ci", bootstrap_servers="x", postgres_dsn=dsn, baseline_s=20)


def test_no_database_is_one_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, spec = _run(tmp_path, f"host=127.0.0.1 port={_closed_port()} dbname=x user=x")
    result = ExperimentResult(run_dir, 0)
    _save_sink(spec, run_dir, result)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: sink data not saved: cannot connect to PostgreSQL")
    assert not (run_dir / SINK_DATA_FILE).exists()
    assert result.exit_code == 0 and result.notes


def test_saved_with_both_baselines(
    tmp_path: Path, fresh_pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The experiment's --baseline (20 s) and the report's default (60 s): a re-render with either needs
    no database."""
    run_dir, spec = _run(tmp_path, fresh_pg_dsn)
    first = ms_from_iso(load_run(run_dir)["started_at"]) + 70_000
    fault = {"fault_id": "f1", "kind": "kill", "target": "kafka-1", "start_ms": first, "end_ms": first + 1}
    (run_dir / "timeline.jsonl").write_text(json.dumps(fault) + "\n")
    _save_sink(spec, run_dir, ExperimentResult(run_dir, 0))
    assert capsys.readouterr().err == ""
    saved = json.loads((run_dir / SINK_DATA_FILE).read_text())
    assert saved["run_id"] == run_dir.name and saved["sink_table"] == "events" and saved["series"] == []
    windows = [x["window"] for x in saved["latency"] if x["window"] is not None]
    assert windows == [[first - 20_000, first], [first - 60_000, first]]
    assert saved["spark_batches"]["executions"] == []  # Spark's batch executions (none here) in the same file
    assert not (run_dir / "spark_batches.json").exists()
