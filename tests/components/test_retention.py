"""Sink retention against a real PostgreSQL: the newest runs stay whole, older runs leave every table,
and a removed run's validation is refused (tools/retention.py)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import psycopg2
from fixtures.cli import run_tools
from fixtures.sink import Row, execute, insert_rows

from tools.retention import prune_runs, pruned_at, runs_by_age

NOW_MS = int(time.time() * 1000)
HOUR_MS = 3_600_000


def _rows(start_ms: int, n: int = 50) -> list[Row]:
    return [Row(i, i % 2, i // 2, produced_ms=start_ms + i, committed_ms=start_ms + 100 + i)
            for i in range(n)]  # fmt: skip


def _count(dsn: str, query: str, params: tuple[object, ...] = ()) -> int:
    with contextlib.closing(psycopg2.connect(dsn)) as conn, conn.cursor() as cur:
        cur.execute(query, params)
        row = cur.fetchone()
        assert row is not None
        return int(row[0])


def _audit(dsn: str, run_id: str, audited_ms: int | None, records: int = 30) -> None:
    """A run's Kafka log as `tools validate` writes it; without bounds when audited_ms is None."""
    execute(
        dsn,
        "INSERT INTO kafka_log (run_id, kafka_partition, kafka_offset, event_id) "
        "SELECT %s, 0, g, g FROM generate_series(0, %s - 1) g",
        (run_id, records),
    )
    if audited_ms is not None:
        execute(
            dsn,
            "INSERT INTO kafka_log_audits (run_id, topic, kafka_partition, log_start, log_end, records, "
            "audited_at) VALUES (%s, 'events', 0, 0, %s, %s, to_timestamp(%s / 1000.0))",
            (run_id, records, records, audited_ms),
        )


def _seed(dsn: str) -> None:
    # Four runs an hour apart, oldest first; the unsafe-sink one only in events_append.
    insert_rows(dsn, "run-a", _rows(NOW_MS - 4 * HOUR_MS))
    _audit(dsn, "run-a", NOW_MS - 4 * HOUR_MS + 60_000)
    insert_rows(dsn, "run-b", _rows(NOW_MS - 3 * HOUR_MS), "events_append")
    insert_rows(dsn, "run-c", _rows(NOW_MS - 2 * HOUR_MS))
    _audit(dsn, "run-c", NOW_MS - 2 * HOUR_MS + 60_000)
    insert_rows(dsn, "run-d", _rows(NOW_MS - HOUR_MS))
    _audit(dsn, "orphan", None)  # an audit that died before its bounds: no time, the oldest
    # Spark's progress and one query's batch markers, before and after the kept runs (less the margin).
    for ms, batch in ((NOW_MS - 5 * HOUR_MS, 0), (NOW_MS - 5 * HOUR_MS + 1000, 1), (NOW_MS - 90 * 60_000, 2)):
        execute(
            dsn,
            "INSERT INTO spark_progress (query_id, batch_id, reported_at, num_input_rows) "
            "VALUES ('q-old', %s, to_timestamp(%s / 1000.0), 10)",
            (batch, ms),
        )
        execute(
            dsn,
            "INSERT INTO sink_batches (query_id, batch_id, rows_staged, rows_inserted, committed_at) "
            "VALUES ('q-old', %s, 10, 10, to_timestamp(%s / 1000.0))",
            (batch, ms),
        )
    # A stopped query whose newest marker is old: it stays (it skips that batch if the driver runs it again).
    execute(
        dsn,
        "INSERT INTO sink_batches (query_id, batch_id, rows_staged, rows_inserted, committed_at) "
        "VALUES ('q-stopped', 7, 10, 10, to_timestamp(%s / 1000.0))",
        (NOW_MS - 5 * HOUR_MS,),
    )


def test_runs_beyond_the_newest_leave_every_table(fresh_pg_dsn: str) -> None:
    _seed(fresh_pg_dsn)
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn:
        with conn, conn.cursor() as cur:
            assert [run for run, _ in runs_by_age(cur)] == ["run-d", "run-c", "run-b", "run-a", "orphan"]
        dry = prune_runs(conn, keep=2, dry_run=True)
        assert set(dry.pruned) == {"run-b", "run-a", "orphan"}
        assert _count(fresh_pg_dsn, "SELECT count(*) FROM events") == 150  # a dry run removes nothing

        # run-b is protected (the run starting now), so the newest two and it stay.
        result = prune_runs(conn, keep=2, protect=["run-b"])
        assert result.kept == ["run-d", "run-c", "run-b"]
        assert result.pruned == {"run-a": 50 + 30 + 1, "orphan": 30}
        assert pruned_at(conn, "run-a") is not None and pruned_at(conn, "run-c") is None

    assert _count(fresh_pg_dsn, "SELECT count(*) FROM events WHERE run_id = 'run-a'") == 0
    assert _count(fresh_pg_dsn, "SELECT count(*) FROM kafka_log WHERE run_id IN ('run-a', 'orphan')") == 0
    assert _count(fresh_pg_dsn, "SELECT count(*) FROM kafka_log_audits WHERE run_id = 'run-a'") == 0
    assert _count(fresh_pg_dsn, "SELECT count(*) FROM events WHERE run_id IN ('run-c', 'run-d')") == 100
    assert _count(fresh_pg_dsn, "SELECT count(*) FROM events_append WHERE run_id = 'run-b'") == 50
    assert _count(fresh_pg_dsn, "SELECT count(*) FROM kafka_log WHERE run_id = 'run-c'") == 30
    # The oldest kept run (run-b) began 3 h ago: progress from 5 h ago goes, from 90 min ago stays;
    # q-old's newest marker stays whatever its age, as does the stopped query's only one.
    assert _count(fresh_pg_dsn, "SELECT count(*) FROM spark_progress") == 1
    assert _count(fresh_pg_dsn, "SELECT count(*) FROM sink_batches WHERE query_id = 'q-old'") == 1
    assert _count(fresh_pg_dsn, "SELECT count(*) FROM sink_batches WHERE query_id = 'q-stopped'") == 1

    # Run again with nothing beyond the newest two: nothing removed.
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn:
        again = prune_runs(conn, keep=3)
    assert again.pruned == {} and again.kept == ["run-d", "run-c", "run-b"]


def test_cli_prunes_and_validate_refuses_a_removed_run(tmp_path: Path, fresh_pg_dsn: str) -> None:
    res = run_tools("produce", "--run-id", "run-a", "--runs-root", tmp_path, "--init-only",
                    "--postgres-dsn", fresh_pg_dsn)  # fmt: skip
    assert res.returncode == 0, res.stderr
    (tmp_path / "run-a" / "ledger.log").write_text(
        "chaosbed-ledger 1 run-a\nS 1 1 1\nR 1 0 49\nA 2 0 49 0 0\nC 3 50\n"
    )
    _seed(fresh_pg_dsn)

    res = run_tools("prune", "--postgres-dsn", fresh_pg_dsn, "--keep-runs", "3", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["would remove run run-a", "would remove run orphan",
                                       "2 of 5 runs are beyond the newest 3"]  # fmt: skip
    res = run_tools("validate", tmp_path / "run-a", "--no-audit")
    assert res.returncode == 0, res.stdout + res.stderr  # still there: validated

    res = run_tools("prune", "--postgres-dsn", fresh_pg_dsn, "--keep-runs", "3")
    assert res.returncode == 0, res.stderr
    assert "removed 111 rows of 2 older runs" in res.stdout, res.stdout

    res = run_tools("validate", tmp_path / "run-a", "--no-audit")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: run run-a's rows were removed from the sink"), lines

    # Bad input: one line, exit 2, nothing removed.
    before = _count(fresh_pg_dsn, "SELECT count(*) FROM events")
    for args in (["--keep-runs", "0"], ["--keep-runs", "x"], []):
        res = run_tools("prune", *(["--postgres-dsn", fresh_pg_dsn] if args != [] else []), *args)
        assert res.returncode == 2, (args, res.stderr)
        assert "Traceback" not in res.stderr
    assert _count(fresh_pg_dsn, "SELECT count(*) FROM events") == before
