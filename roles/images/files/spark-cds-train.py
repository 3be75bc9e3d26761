"""Image build step: run the job's own session and code so the JVM dumps its classes into a CDS archive.

The streaming job starts its driver with -XX:SharedArchiveFile (spark_job/job.py): class loading and
verification are most of a restarted driver's start-up on two busy cores. The session is the job's
(spark_job.job.build_session: same class path, so the archive matches), the micro-batches go through
the job's JSON parsing and foreachBatch, and the Kafka source and consumer are started against a
loopback port where nothing listens: no broker exists at build time, but their classes load.
Usage (in the image, with spark_job importable):
    python3 spark-cds-train.py /opt/spark-cds/spark.jsa
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
import time

from pyspark import SparkContext
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_job.job import EVENT_SCHEMA, build_session, events_stream
from spark_job.settings import Settings

NOWHERE = "127.0.0.1:9"  # loopback discard port: connections are refused at once


def train_micro_batches(spark, checkpoint: str) -> int:
    seen: list[int] = []

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        seen.extend(r[0] for r in batch.collect())

    events = (
        spark.readStream.format("rate")
        .option("rowsPerSecond", 100)
        .load()
        .select(
            F.to_json(F.struct(F.lit("r").alias("run_id"), F.col("value").alias("event_id"))).alias("value")
        )
        .select(F.from_json(F.col("value"), EVENT_SCHEMA)["event_id"].alias("event_id"))
    )
    query = (
        events.writeStream.foreachBatch(write_batch)
        .option("checkpointLocation", checkpoint)
        .trigger(processingTime="500 milliseconds")
        .start()
    )
    while query.lastProgress is None or query.lastProgress["batchId"] < 3:
        query.awaitTermination(0.5)
    query.stop()
    return len(seen)


def train_kafka_source(spark, settings: Settings, checkpoint: str) -> None:
    """The job's Kafka source, started and stopped while its offset lookups fail: loads the source,
    admin client and network classes."""
    query = (
        events_stream(spark, settings)
        .writeStream.foreachBatch(lambda batch, batch_id: None)
        .option("checkpointLocation", checkpoint)
        .start()
    )
    time.sleep(5)
    with contextlib.suppress(Exception):  # it may have failed already: that is the point
        query.stop()


def train_kafka_consumer(spark) -> None:
    """A Kafka consumer of the executor's kind, polled against nothing: loads the consumer's classes."""
    jvm = spark.sparkContext._jvm
    props = jvm.java.util.Properties()
    for key, value in {
        "bootstrap.servers": NOWHERE,
        "key.deserializer": "org.apache.kafka.common.serialization.ByteArrayDeserializer",
        "value.deserializer": "org.apache.kafka.common.serialization.ByteArrayDeserializer",
        "enable.auto.commit": "false",
        "group.id": "chaosbed-cds-training",
    }.items():
        props.setProperty(key, value)
    consumer = jvm.org.apache.kafka.clients.consumer.KafkaConsumer(props)
    partition = jvm.org.apache.kafka.common.TopicPartition("events", 0)
    consumer.assign(jvm.java.util.Collections.singletonList(partition))
    consumer.seek(partition, 0)
    consumer.poll(jvm.java.time.Duration.ofMillis(1500))
    consumer.close(jvm.java.time.Duration.ofMillis(500))


def main(archive: str) -> None:
    base = Settings.from_env()
    timeouts = {"request.timeout.ms": "500", "default.api.timeout.ms": "500"}
    settings = dataclasses.replace(
        base, bootstrap_servers=NOWHERE, kafka_properties={**base.kafka_properties, **timeouts}
    )
    spark = build_session(settings, "chaosbed-cds-training", f"-XX:ArchiveClassesAtExit={archive}")
    with tempfile.TemporaryDirectory() as rate_checkpoint, tempfile.TemporaryDirectory() as kafka_checkpoint:
        rows = train_micro_batches(spark, rate_checkpoint)
        train_kafka_source(spark, settings, kafka_checkpoint)
        train_kafka_consumer(spark)
    gateway = SparkContext._gateway
    spark.stop()
    # The archive is written while the JVM exits; wait for that instead of leaving it half written.
    with contextlib.suppress(Exception):  # the JVM drops the connection as it exits, as intended
        gateway.jvm.System.exit(0)
    gateway.proc.wait(timeout=600)
    if not os.path.isfile(archive) or not os.path.getsize(archive):
        raise SystemExit(f"error: no CDS archive at {archive}")
    print(f"CDS archive {archive}: {os.path.getsize(archive) // 2**20} MiB, trained on {rows} rows")


if __name__ == "__main__":
    main(sys.argv[1])
