"""`tools chaos run` with a fault fired by a sink commit, on a throwaway container and a real PostgreSQL
with the role's schema: it fires after the commit, with the seed's delay, and is recorded with the event's
and the fire's times; no event means a failed fault and nothing applied; SIGTERM while waiting applies
nothing and exits at once."""

from __future__ import annotations

import signal
import time

import psycopg2

from tools.chaos.triggers import Trigger

MARKER = "INSERT INTO sink_batches (query_id, batch_id, rows_staged, rows_inserted) VALUES ('q', %s, 1, 1)"


def listening(dsn: str) -> bool:
    """The run's trigger holds its LISTEN connection (armed), so a commit from now on is seen."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'chaosbed-trigger' "
            "AND datname = current_database()"
        )
        return cur.fetchone()[0] > 0


def commit_batch(dsn: str, batch: int) -> int:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(MARKER, (batch,))
        committed = time.time_ns() // 1_000_000
        conn.commit()
        return committed
    finally:
        conn.close()


def test_fault_fires_after_the_sink_commit_with_the_seeded_delay(bed, fresh_pg_dsn: str) -> None:
    bed.service("sinkish")
    path = bed.scenario(
        "seed: 3\nfaults:\n"
        "  - {kind: pause, target: sinkish, at: 0s, duration: 2s,"
        " after: {event: sink-commit, delay: 10-30ms, within: 30s}}\n"
    )
    run_dir = bed.runs_dir / "fires"
    proc = bed.spawn(
        "run", "--scenario", str(path), "--run-dir", str(run_dir), "--postgres-dsn", fresh_pg_dsn
    )
    bed.wait_for("the trigger's LISTEN", lambda: listening(fresh_pg_dsn), 30, proc)
    time.sleep(0.5)
    assert not bed.state("sinkish")["Paused"], "fired before any commit"
    committed = commit_batch(fresh_pg_dsn, 1)
    bed.wait_for("the pause", lambda: bed.state("sinkish")["Paused"], 10, proc)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert not bed.state("sinkish")["Paused"]
    [line] = bed.timeline(run_dir)
    assert line["outcome"] == "ok" and line["kind"] == "pause"
    trig = line["trigger"]
    assert trig["after"] == "after sink-commit +10-30ms" and trig["event"] == "sink-commit"
    assert trig["delay_ms"] == Trigger("sink-commit", 10, 30, 30_000).draw_delay(3, 1, "sinkish")
    assert trig["event_ms"] >= committed
    assert trig["fire_ms"] >= trig["event_ms"] + trig["delay_ms"]
    assert trig["latency_ms"] == trig["fire_ms"] - trig["event_ms"]
    assert line["start_ms"] >= trig["event_ms"]


def test_no_event_within_its_window_is_a_failed_fault_and_nothing_applied(bed, fresh_pg_dsn: str) -> None:
    bed.service("quiet")
    path = bed.scenario(
        "- {kind: pause, target: quiet, at: 0s, duration: 2s, after: {event: sink-commit, within: 2s}}\n"
    )
    run_dir = bed.runs_dir / "quiet"
    done = bed.cli("run", "--scenario", str(path), "--run-dir", str(run_dir), "--postgres-dsn", fresh_pg_dsn)
    assert done.returncode == 1, done.stderr
    [line] = bed.timeline(run_dir)
    assert line["outcome"] == "failed: no sink-commit event within 2s of its 'at'"
    assert not [r for r in bed.journal(run_dir) if r["type"] == "intent"]
    assert not bed.state("quiet")["Paused"]


def test_sigterm_while_waiting_applies_nothing_and_exits(bed, fresh_pg_dsn: str) -> None:
    bed.service("waiting")
    path = bed.scenario(
        "- {kind: pause, target: waiting, at: 0s, duration: 5s, after: {event: sink-commit, within: 60s}}\n"
    )
    run_dir = bed.runs_dir / "sigterm"
    proc = bed.spawn(
        "run", "--scenario", str(path), "--run-dir", str(run_dir), "--postgres-dsn", fresh_pg_dsn
    )
    bed.wait_for("the trigger's LISTEN", lambda: listening(fresh_pg_dsn), 30, proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert time.monotonic() - sent < 10
    assert not [r for r in bed.journal(run_dir) if r["type"] == "intent"]
    assert bed.timeline(run_dir) == []
    commit_batch(fresh_pg_dsn, 2)  # too late: nothing is listening any more
    time.sleep(0.5)
    assert not bed.state("waiting")["Paused"]
