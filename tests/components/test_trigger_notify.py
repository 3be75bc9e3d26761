"""`after: sink-commit` on a real PostgreSQL with the role's schema: a batch written by either sink is one
notification, delivered at its commit and never for a rolled-back batch; the watcher gives up at its
deadline and on the stop flag."""

from __future__ import annotations

import threading
import time

import psycopg2
import pytest

from tools.chaos.triggers import SinkCommitWatcher, TriggerError

APPEND = """
INSERT INTO events_append (run_id, event_id, topic, kafka_partition, kafka_offset, produced_at,
                           query_id, batch_id)
SELECT 'trig', g, 'events', 0, g, now(), 'q', %s FROM generate_series(1, 50) AS g
"""
MARKER = """
INSERT INTO sink_batches (query_id, batch_id, rows_staged, rows_inserted) VALUES ('q', %s, 50, 50)
ON CONFLICT (query_id, batch_id) DO UPDATE SET replays = sink_batches.replays + 1
"""


def armed(dsn: str) -> SinkCommitWatcher:
    watcher = SinkCommitWatcher(dsn)
    watcher.arm()
    return watcher


def drain(watcher: SinkCommitWatcher, seconds: float = 0.5) -> int:
    """How many notifications arrive within `seconds`."""
    count = 0
    deadline = time.monotonic() + seconds
    while watcher.wait(deadline, threading.Event()) is not None:
        count += 1
    return count


@pytest.mark.parametrize(
    ("statements", "what"),
    [((APPEND, MARKER), "the unsafe sink: rows appended, then its marker"), ((MARKER,), "a marker alone")],
)
def test_one_notification_per_committed_batch(
    fresh_pg_dsn: str, statements: tuple[str, ...], what: str
) -> None:
    watcher = armed(fresh_pg_dsn)
    try:
        with psycopg2.connect(fresh_pg_dsn) as conn, conn.cursor() as cur:
            for batch in (1, 2):
                for statement in statements:
                    cur.execute(statement, (batch,))
                assert drain(watcher, 0.3) == 0, f"{what}: notified before the commit"
                before = time.time_ns() // 1_000_000
                conn.commit()
                fired = watcher.wait(time.monotonic() + 5, threading.Event())
                assert fired is not None, f"{what}: no notification after the commit"
                assert fired.event_ms >= before and fired.detail.startswith("txid ")
                assert drain(watcher) == 0, f"{what}: more than one notification for one batch"
    finally:
        watcher.close()


def test_append_sink_without_a_marker_still_notifies(fresh_pg_dsn: str) -> None:
    watcher = armed(fresh_pg_dsn)
    try:
        with psycopg2.connect(fresh_pg_dsn) as conn, conn.cursor() as cur:
            cur.execute(APPEND, (7,))
        assert drain(watcher, 2) == 1
    finally:
        watcher.close()


def test_rolled_back_batch_is_no_event(fresh_pg_dsn: str) -> None:
    watcher = armed(fresh_pg_dsn)
    try:
        conn = psycopg2.connect(fresh_pg_dsn)
        with conn.cursor() as cur:
            cur.execute(APPEND, (9,))
            cur.execute(MARKER, (9,))
        conn.rollback()
        conn.close()
        assert drain(watcher, 1) == 0
    finally:
        watcher.close()


def test_wait_ends_at_its_deadline_and_on_stop(fresh_pg_dsn: str) -> None:
    watcher = armed(fresh_pg_dsn)
    try:
        assert watcher.wait(time.monotonic() + 0.3, threading.Event()) is None
        stop = threading.Event()
        threading.Timer(0.3, stop.set).start()
        assert watcher.wait(time.monotonic() + 60, stop) is None
        assert stop.is_set()
    finally:
        watcher.close()


def test_a_database_without_the_triggers_is_refused(fresh_pg_dsn: str) -> None:
    with psycopg2.connect(fresh_pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("DROP TRIGGER chaosbed_sink_commit ON sink_batches")
        cur.execute("DROP TRIGGER chaosbed_sink_commit ON events_append")
    with pytest.raises(TriggerError, match="not installed"):
        SinkCommitWatcher(fresh_pg_dsn).arm()
