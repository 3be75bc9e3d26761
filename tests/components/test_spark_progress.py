"""The job's progress recorder on a real local Spark session and a real PostgreSQL: every batch's progress
arrives as Spark's JSON and becomes a spark_progress row; a database the recorder cannot reach costs rows,
never the query; a connection killed under it is replaced without losing the next event's row.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from spark_job.progress import ProgressRecorder


@contextlib.contextmanager
def rate_query(spark: SparkSession, checkpoint: Path, name: str) -> Iterator[StreamingQuery]:
    query = (
        # rate-micro-batch: every batch holds rows (the plain rate source leaves most 200 ms batches empty).
        spark.readStream.format("rate-micro-batch")
        .option("rowsPerBatch", 10)
        .load()
        .writeStream.queryName(name)
        # Rows count as input only when the batch is read.
        .foreachBatch(lambda batch, batch_id: batch.count())
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime="200 milliseconds")
        .start()
    )
    try:
        yield query
    finally:
        query.stop()


def rows_of(dsn: str, name: str) -> list[tuple]:
    with contextlib.closing(psycopg2.connect(dsn)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT batch_id, num_input_rows, batch_duration_ms, end_offsets FROM spark_progress"
            " WHERE run_name = %s ORDER BY batch_id",
            (name,),
        )
        return cur.fetchall()


def wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout:.0f} s")
        time.sleep(0.2)


def test_every_batch_becomes_a_row(spark_session: SparkSession, fresh_pg_dsn: str, tmp_path: Path) -> None:
    recorder = ProgressRecorder(fresh_pg_dsn)
    recorder.attach(spark_session)
    with rate_query(spark_session, tmp_path / "ck", "progress-rows") as query:
        wait_for(lambda: sum(1 for r in rows_of(fresh_pg_dsn, "progress-rows") if r[1] > 0) >= 5)
        last = query.lastProgress
    assert last is not None
    # The listener runs behind the query: wait for the row of the last batch seen.
    wait_for(lambda: last["batchId"] in {r[0] for r in rows_of(fresh_pg_dsn, "progress-rows")})
    rows = [r for r in rows_of(fresh_pg_dsn, "progress-rows") if r[1] > 0]
    batch_ids = [r[0] for r in rows]
    assert batch_ids == sorted(set(batch_ids)), "one row per batch"
    assert all(r[2] is not None and r[2] >= 0 for r in rows), "trigger duration recorded"
    # The source's end offsets ({"offset": rows so far, ...}) reach the jsonb column as JSON.
    assert [r[3]["offset"] for r in rows] == [10 * (b + 1) for b in batch_ids]
    # The job's session writes local checkpoints as plain files: no Hadoop .crc side files.
    offsets = tmp_path / "ck" / "offsets"
    assert {str(b) for b in batch_ids} <= {p.name for p in offsets.iterdir()}
    assert not list((tmp_path / "ck").rglob("*.crc"))


def test_unreachable_database_costs_rows_not_the_query(spark_session: SparkSession, tmp_path: Path) -> None:
    recorder = ProgressRecorder("host=127.0.0.1 port=1 dbname=none user=none connect_timeout=1")
    recorder.attach(spark_session)
    with rate_query(spark_session, tmp_path / "ck", "progress-unreachable") as query:
        wait_for(lambda: (query.lastProgress or {}).get("batchId", -1) >= 3)
        assert query.isActive
    assert recorder.last_batch_id >= 3


def test_killed_connection_is_replaced_without_losing_a_row(
    spark_session: SparkSession, fresh_pg_dsn: str, tmp_path: Path
) -> None:
    recorder = ProgressRecorder(fresh_pg_dsn)
    recorder.attach(spark_session)
    with rate_query(spark_session, tmp_path / "ck", "progress-reconnect"):
        wait_for(lambda: recorder._conn is not None and len(rows_of(fresh_pg_dsn, "progress-reconnect")) >= 2)
        assert recorder._conn is not None
        victim = recorder._conn.get_backend_pid()
        with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (victim,))
        killed_at_batch = recorder.last_batch_id
        wait_for(
            lambda: (
                recorder._conn is not None
                and recorder._conn.get_backend_pid() != victim
                and recorder.last_batch_id >= killed_at_batch + 3
            )
        )
    batch_ids = {r[0] for r in rows_of(fresh_pg_dsn, "progress-reconnect")}
    # Every batch after the kill has its row: the first one was retried on a new connection.
    assert set(range(killed_at_batch + 1, killed_at_batch + 4)) <= batch_ids
