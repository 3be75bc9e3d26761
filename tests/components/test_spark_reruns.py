"""tools/spark_reruns.py on a real PostgreSQL, from batches the real sink wrote: a task retry and a batch
replay are told apart, and only the window's executions count."""

from __future__ import annotations

import contextlib
import time

import psycopg2

from spark_job.sink import Connection, PostgresSink, Staged, stage_rows
from tools.spark_reruns import reruns

RUN, QUERY = "run-reruns", "q-reruns"


def batch(dsn: str, sink: PostgresSink, batch_id: int, attempt: int) -> None:
    sink.begin(QUERY, batch_id)
    rows = [(RUN, batch_id * 10 + i, "events", 0, batch_id * 10 + i, 1_800_000_000_000) for i in range(10)]
    conn = Connection(dsn, 5)
    stage_rows(conn, QUERY, batch_id, 0, rows)
    conn.drop()
    sink.commit(QUERY, batch_id, [Staged(0, attempt, 10, frozenset({RUN}))])


def test_task_reruns_and_batch_reruns_in_a_window(fresh_pg_dsn: str) -> None:
    sink = PostgresSink(fresh_pg_dsn, retry_seconds=5)
    batch(fresh_pg_dsn, sink, 0, 0)
    # The window's start in whole ms, strictly after batch 0's commit (recorded in microseconds).
    time.sleep(0.01)
    start = int(time.time() * 1000)
    batch(fresh_pg_dsn, sink, 1, 2)  # an executor was lost: its task's third attempt staged it
    batch(fresh_pg_dsn, sink, 2, 0)
    batch(fresh_pg_dsn, sink, 2, 0)  # the driver restarted: batch 2 ran again (a replay)
    end = int(time.time() * 1000) + 1
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn:
        found = reruns(conn, start, end)
        assert (found.executions, found.batches_rerun, found.tasks_rerun) == (3, 1, 1)
        assert found.describe() == "1 task(s) re-run in 1 batch(es), 1 whole batch(es) re-run"
        assert reruns(conn, 0, start).describe() == "nothing re-run"
        assert reruns(conn, end + 60_000, end + 120_000).describe() == "no batch committed"
