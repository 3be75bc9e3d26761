"""The sink written from the executors (spark_job/sink.py) on a real PostgreSQL and a real local Spark:
each task stages its partition, the driver moves the batch in one transaction; a retried task replaces
what its earlier attempt staged, a half-staged batch is cleaned up, a replayed batch is absorbed (and
doubled only by the append sink of the unsafe-sink profile), and a stage that lost rows is never moved.
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg2
import pytest
from pyspark.sql import SparkSession

from spark_job.job import write_staged
from spark_job.sink import Connection, PostgresSink, Staged, StagingMismatch, stage_rows

RUN = "run-stage"
QUERY = "q-stage"


def rows(first: int, count: int, partition: int) -> list[tuple[Any, ...]]:
    return [(RUN, i, "events", partition, i, 1_800_000_000_000) for i in range(first, first + count)]


def one(dsn: str, sql: str, params: tuple[object, ...] = ()) -> Any:
    with contextlib.closing(psycopg2.connect(dsn)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def sink_state(dsn: str, table: str = "events") -> tuple[int, int, int]:
    """(rows, distinct ids, rows left in the stage)."""
    n, ids = one(dsn, f"SELECT count(*), count(DISTINCT event_id) FROM {table} WHERE run_id = %s", (RUN,))
    return int(n), int(ids), int(one(dsn, "SELECT count(*) FROM sink_stage")[0])


def stage(dsn: str, batch: int, partition: int, data: list[tuple[Any, ...]]) -> Staged:
    """What one task attempt does on an executor."""
    conn = Connection(dsn, retry_seconds=5)
    try:
        stage_rows(conn, QUERY, batch, partition, data)
    finally:
        conn.drop()
    return Staged(partition, 0, len(data), frozenset({RUN}))


def test_a_retried_task_replaces_what_its_first_attempt_staged(fresh_pg_dsn: str) -> None:
    sink = PostgresSink(fresh_pg_dsn, retry_seconds=5)
    sink.begin(QUERY, 0)
    stage(fresh_pg_dsn, 0, 0, rows(0, 50, 0))
    stage(fresh_pg_dsn, 0, 1, rows(50, 50, 1))
    # The executor of partition 0 died after its commit, before Spark heard of it: attempt 1 stages again.
    retried = stage(fresh_pg_dsn, 0, 0, rows(0, 50, 0))
    staged = [Staged(0, 1, retried.rows, retried.run_ids), Staged(1, 0, 50, frozenset({RUN}))]
    result = sink.commit(QUERY, 0, staged)
    assert (result.staged, result.inserted, result.replayed, result.retried_tasks) == (100, 100, False, 1)
    assert sink_state(fresh_pg_dsn) == (100, 100, 0)
    assert one(fresh_pg_dsn, "SELECT max(deliveries) FROM events")[0] == 1
    assert one(fresh_pg_dsn, "SELECT tasks, retried_tasks FROM sink_batch_reads") == (2, 1)


def test_a_half_staged_batch_is_cleaned_and_a_replayed_batch_absorbed(fresh_pg_dsn: str) -> None:
    sink = PostgresSink(fresh_pg_dsn, retry_seconds=5)
    # The driver died while the tasks staged: partition 0 is in the stage, nothing was moved.
    stage(fresh_pg_dsn, 3, 0, rows(0, 40, 0))
    # The restarted driver runs batch 3 again, from the start.
    sink.begin(QUERY, 3)
    assert sink_state(fresh_pg_dsn) == (0, 0, 0)
    staged = [stage(fresh_pg_dsn, 3, 0, rows(0, 40, 0)), stage(fresh_pg_dsn, 3, 1, rows(40, 40, 1))]
    assert sink.commit(QUERY, 3, staged).inserted == 80
    # Committed, but Spark's commit log missed it: the batch runs once more and is only counted.
    sink.begin(QUERY, 3)
    staged = [stage(fresh_pg_dsn, 3, 0, rows(0, 40, 0)), stage(fresh_pg_dsn, 3, 1, rows(40, 40, 1))]
    replay = sink.commit(QUERY, 3, staged)
    assert (replay.replayed, replay.inserted) == (True, 0)
    assert sink_state(fresh_pg_dsn) == (80, 80, 0)
    assert one(fresh_pg_dsn, "SELECT replays FROM sink_batches")[0] == 1
    digests = one(
        fresh_pg_dsn, "SELECT count(*), count(DISTINCT rows_digest), min(rows_read) FROM sink_batch_reads"
    )
    assert digests == (2, 1, 80), "both executions recorded, with the same rows"


def test_a_stage_that_lost_rows_is_never_moved(fresh_pg_dsn: str) -> None:
    sink = PostgresSink(fresh_pg_dsn, retry_seconds=5)
    sink.begin(QUERY, 0)
    staged = [stage(fresh_pg_dsn, 0, 0, rows(0, 30, 0))]
    # What a PostgreSQL crash does to the unlogged stage.
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn, conn, conn.cursor() as cur:
        cur.execute("DELETE FROM sink_stage WHERE event_id < 10")
    with pytest.raises(StagingMismatch):
        sink.commit(QUERY, 0, staged)
    assert sink_state(fresh_pg_dsn)[:2] == (0, 0)
    assert one(fresh_pg_dsn, "SELECT count(*) FROM sink_batches")[0] == 0


def test_the_append_sink_still_doubles_a_replayed_batch_but_not_a_retried_task(fresh_pg_dsn: str) -> None:
    sink = PostgresSink(fresh_pg_dsn, mode="append", retry_seconds=5)
    for _execution in range(2):
        sink.begin(QUERY, 0)
        stage(fresh_pg_dsn, 0, 0, rows(0, 20, 0))
        staged = [stage(fresh_pg_dsn, 0, 0, rows(0, 20, 0))]  # a retried task: replaced
        sink.commit(QUERY, 0, staged)
    assert sink_state(fresh_pg_dsn, "events_append") == (40, 20, 0)
    assert one(fresh_pg_dsn, "SELECT replays FROM sink_batches")[0] == 1


def test_spark_tasks_stage_their_partitions_and_the_driver_moves_the_batch(
    spark_session: SparkSession, fresh_pg_dsn: str
) -> None:
    data = [(RUN, i, "events", i % 3, i // 3, 1_800_000_000_000) for i in range(600)]
    schema = "run_id string, event_id long, topic string, partition int, offset long, produced_at_ms long"
    # The job's batch columns, in three partitions: three tasks.
    batch = spark_session.createDataFrame(data, schema).repartition(3)
    sink = PostgresSink(fresh_pg_dsn, retry_seconds=5)
    result = write_staged(sink, batch, QUERY, 0, (None, None))
    assert (result.staged, result.inserted, result.run_ids) == (600, 600, frozenset({RUN}))
    assert sink_state(fresh_pg_dsn) == (600, 600, 0)
    assert one(fresh_pg_dsn, "SELECT tasks, rows_read FROM sink_batch_reads") == (3, 600)
    digest = one(fresh_pg_dsn, "SELECT rows_digest FROM sink_batch_reads")[0]
    assert digest == {str(p): [200, 0, 199, sum(range(200))] for p in range(3)}
    # The same batch again (Spark re-ran it): absorbed.
    assert write_staged(sink, batch, QUERY, 0, (None, None)).replayed
    assert sink_state(fresh_pg_dsn) == (600, 600, 0)
