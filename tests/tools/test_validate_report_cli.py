"""produce -> rows in PostgreSQL (as the sink writes them) -> `tools validate` -> `tools report`."""

from __future__ import annotations

import json
from pathlib import Path

from fixtures.cli import run_tools, run_tools_on_a_terminal
from fixtures.kafka import KafkaBroker
from fixtures.sink import Row, acked_rows, execute, insert_rows

from tools.ledger import load_ledger


def test_validate_and_report_a_produced_run(
    tmp_path: Path, kafka_broker: KafkaBroker, kafka_topic: str, fresh_pg_dsn: str
) -> None:
    res = run_tools(
        "produce", "--run-id", "v1", "--runs-root", tmp_path, "--bootstrap-servers", kafka_broker.bootstrap,
        "--topic", kafka_topic, "--postgres-dsn", fresh_pg_dsn, "--rate", "0", "--count", "3000",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    run_dir = tmp_path / "v1"
    state = load_ledger(run_dir)
    insert_rows(fresh_pg_dsn, "v1", acked_rows(state))

    # No flags needed: the DSN comes from run.json.
    res = run_tools("validate", run_dir, "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["valid"] is True and data["acked_count"] == 3000 and data["rows_count"] == 3000
    assert data["missing_count"] == data["extra_count"] == data["duplicate_count"] == 0
    assert json.loads((run_dir / "validation.json").read_text())["acked_count"] == 3000

    # On a terminal, a live line says which step it is in (and is erased when done).
    code, screen = run_tools_on_a_terminal("validate", run_dir, "--no-audit")
    assert code == 0, screen
    assert "validate: checking 3,000 attempted ids against events" in screen, screen

    # Lose one acked row and duplicate another: exit 1, both reported.
    execute(fresh_pg_dsn, "DELETE FROM events WHERE run_id = 'v1' AND event_id = 42")
    execute(fresh_pg_dsn, "UPDATE events SET deliveries = 2 WHERE run_id = 'v1' AND event_id = 7")
    res = run_tools("validate", "--runs-root", tmp_path, "--run-id", "v1", "--json")
    assert res.returncode == 1, res.stderr
    data = json.loads(res.stdout)
    assert (data["missing_count"], data["duplicate_count"], data["valid"]) == (1, 1, False)
    assert data["samples"]["missing"] == [42] and data["samples"]["duplicate"] == [7]

    # The human-readable table says the same.
    res = run_tools("validate", run_dir)
    assert res.returncode == 1
    assert "INVALID" in res.stdout and "sample missing ids: 42" in res.stdout

    res = run_tools("report", run_dir)
    assert res.returncode == 0, res.stderr
    report = (run_dir / "RESILIENCE_REPORT.md").read_text()
    assert "| Acknowledged (acks=all) | 3,000 |" in report
    assert "**Verdict: INVALID**: 1 acknowledged ids missing (lost); 1 ids delivered more than once" in report
    assert (run_dir / "throughput.png").exists() and (run_dir / "latency.png").exists()


def test_validate_append_table_counts_duplicate_rows(tmp_path: Path, fresh_pg_dsn: str) -> None:
    res = run_tools("produce", "--run-id", "a1", "--runs-root", tmp_path, "--init-only", "--postgres-dsn",
                    fresh_pg_dsn, "--sink-table", "events_append", "--profile", "unsafe-sink")  # fmt: skip
    assert res.returncode == 0, res.stderr
    run_dir = tmp_path / "a1"
    # A ledger written the way the producer writes it: ids 0..9 acked on partition 0.
    (run_dir / "ledger.log").write_text("chaosbed-ledger 1 a1\nS 1 1 1\nR 1 0 9\nA 2 0 9 0 0\nC 3 10\n")
    insert_rows(fresh_pg_dsn, "a1", [Row(i, 0, i) for i in range(10)] + [Row(3, 0, 3)], "events_append")
    res = run_tools("validate", run_dir, "--json")
    assert res.returncode == 1
    data = json.loads(res.stdout)
    assert data["sink_table"] == "events_append" and data["rows_count"] == 11
    assert data["duplicate_count"] == 1 and data["samples"]["duplicate"] == [3]
