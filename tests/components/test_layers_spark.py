"""The job's own stream and sink (spark_job.job) on a real local Spark, Kafka and PostgreSQL: each batch
records the offsets it read from the checkpoint, a clean run has no anomaly at any layer, and a query
restarted from `latest` without its checkpoint (the unsafe-offsets profile) is placed at the Spark
layer as an offset gap holding exactly the ids produced while it was down, with the Kafka log
holding every id.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from fixtures.kafka import KafkaBroker
from fixtures.produced import RUN, produce
from fixtures.spark import local_settings
from pyspark.sql import SparkSession

from spark_job.job import events_stream, make_batch_writer
from spark_job.sink import PostgresSink
from tools.audit import audit_log
from tools.ledger import load_ledger
from tools.validation import ValidationResult, validate_run


def sink_count(dsn: str) -> int:
    with contextlib.closing(psycopg2.connect(dsn)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM events WHERE run_id = %s", (RUN,))
        return int(cur.fetchone()[0])


@contextlib.contextmanager
def job_query(
    spark: SparkSession, broker: KafkaBroker, topic: str, dsn: str, checkpoint: Path, starting: str
) -> Iterator[None]:
    settings = local_settings(
        bootstrap_servers=broker.bootstrap, topic=topic, starting_offsets=starting, checkpoint=str(checkpoint)
    )
    query = (
        events_stream(spark, settings)
        .writeStream.foreachBatch(make_batch_writer(PostgresSink(dsn, retry_seconds=5), "", str(checkpoint)))
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime="200 milliseconds")
        .start()
    )
    try:
        yield
    finally:
        query.stop()


def wait_rows(dsn: str, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while sink_count(dsn) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"{sink_count(dsn)} of {count} rows in the sink after {timeout:.0f} s")
        time.sleep(0.2)


def validate(dsn: str, broker: KafkaBroker, topic: str, run_dir: Path) -> ValidationResult:
    with contextlib.closing(psycopg2.connect(dsn)) as conn:
        audit_log(conn, RUN, broker.bootstrap, topic)
        return validate_run(conn, RUN, load_ledger(run_dir), "events", audited=True)


def counts(result: ValidationResult) -> dict[str, int]:
    return {n: c["count"] for n, c in result.layers["classes"].items() if c["count"]}


def test_job_records_batch_offsets_and_a_checkpoint_dropped_under_latest_is_a_spark_gap(
    spark_session: SparkSession,
    kafka_broker: KafkaBroker,
    kafka_topic: str,
    fresh_pg_dsn: str,
    tmp_path: Path,
) -> None:
    run_dir, ck = tmp_path / "run", tmp_path / "ck"
    run_dir.mkdir()
    produce(kafka_broker, kafka_topic, run_dir, 0, 200)
    with job_query(spark_session, kafka_broker, kafka_topic, fresh_pg_dsn, ck, "earliest"):
        wait_rows(fresh_pg_dsn, 200)
    clean = validate(fresh_pg_dsn, kafka_broker, kafka_topic, run_dir)
    assert clean.valid and counts(clean) == {}, clean.layers
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM sink_batch_reads WHERE start_offsets IS NULL OR end_offsets IS NULL"
        )
        assert cur.fetchone()[0] == 0, "every batch recorded the offsets it read"

    # Spark down; 100 events arrive; it comes back without its checkpoint, from `latest`.
    produce(kafka_broker, kafka_topic, run_dir, 200, 100)
    shutil.rmtree(ck)
    with job_query(spark_session, kafka_broker, kafka_topic, fresh_pg_dsn, ck, "latest"):
        time.sleep(3)  # the new query has fixed its initial offsets at the log end
        produce(kafka_broker, kafka_topic, run_dir, 300, 100)
        wait_rows(fresh_pg_dsn, 300)
    result = validate(fresh_pg_dsn, kafka_broker, kafka_topic, run_dir)
    assert result.missing_count == 100
    found = counts(result)
    assert set(found) == {"offset-gap"}, result.layers["classes"]
    gaps = result.layers["classes"]["offset-gap"]["witnesses"]
    assert sum(g["run_ids_in_gap"] for g in gaps) == 100
    assert result.layers["missing_by_layer"] == {
        "kafka": 0,
        "spark_skipped": 0,
        "spark_gap": 100,
        "spark_unread": 0,
        "not_placed": 0,
    }
