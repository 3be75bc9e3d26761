"""The job's Kafka source as Spark plans it: the `spark_kafka_properties` reach the source, the
`spark_kafka_options` pass-through overrides them, and in local mode the Kafka jars load from the driver's
class path.

A real local Spark session (no broker needed: planning a streaming source does not connect). The jars
are the ones `make setup` resolved for the Spark image.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.spark import local_settings
from pyspark.sql import SparkSession

from spark_job.job import events_stream, is_local_path
from spark_job.settings import Settings


@pytest.fixture(scope="module")
def settings() -> Settings:
    return local_settings(kafka_options={"metadata.max.age.ms": "1234", "request.timeout.ms": "1500"})


def test_kafka_options_reach_the_source_and_override(spark_session: SparkSession, settings: Settings) -> None:
    plan = events_stream(spark_session, settings)._jdf.queryExecution().logical().toString()
    assert "kafka.metadata.max.age.ms=1234" in plan
    assert "kafka.metadata.max.age.ms=500" not in plan
    # Set over spark_kafka_properties' 1000 ms: the pass-through wins.
    assert "kafka.request.timeout.ms=1500" in plan
    assert "kafka.request.timeout.ms=1000" not in plan


def test_lost_leader_backoffs_are_set_and_can_be_overridden(spark_session: SparkSession) -> None:
    # Re-dial a lost broker after 0.5 s, not Kafka's 50 ms, so a metadata request can reach another one.
    plan = events_stream(spark_session, local_settings())._jdf.queryExecution().logical().toString()
    for option in (
        "kafka.fetch.max.wait.ms=10",
        "kafka.request.timeout.ms=1000",
        "kafka.default.api.timeout.ms=2000",
        "kafka.socket.connection.setup.timeout.ms=1000",
        "kafka.socket.connection.setup.timeout.max.ms=3000",
        "fetchOffset.numRetries=40",
        "fetchOffset.retryIntervalMs=100",
        "kafka.reconnect.backoff.ms=500",
        "kafka.reconnect.backoff.max.ms=1000",
        "kafka.retry.backoff.ms=50",
        "kafka.retry.backoff.max.ms=250",
        # Wakes the driver's admin client so a request to a frozen leader times out after 1 s, not 2.
        "kafka.metadata.max.age.ms=500",
    ):
        assert option in plan
    overridden = local_settings(kafka_options={"reconnect.backoff.ms": "50"})
    plan = events_stream(spark_session, overridden)._jdf.queryExecution().logical().toString()
    assert "kafka.reconnect.backoff.ms=50," in plan or "kafka.reconnect.backoff.ms=50)" in plan
    assert "kafka.reconnect.backoff.ms=500" not in plan


def test_local_mode_puts_the_jars_on_the_driver_class_path(spark_session: SparkSession) -> None:
    class_path = spark_session.conf.get("spark.driver.extraClassPath")
    assert any(Path(p).name.startswith("spark-sql-kafka-") for p in class_path.split(":"))
    assert spark_session.conf.get("spark.jars", "") == ""


def test_local_checkpoints_use_plain_files(spark_session: SparkSession) -> None:
    assert spark_session.conf.get("spark.sql.streaming.checkpointFileManagerClass").endswith(
        "FileSystemBasedCheckpointFileManager"
    )
    assert spark_session.conf.get("spark.hadoop.fs.file.impl") == "org.apache.hadoop.fs.RawLocalFileSystem"


@pytest.mark.parametrize(
    ("path", "local"),
    [
        ("/checkpoint/events", True),
        ("file:///var/lib/x", True),
        ("hdfs://nn/ck", False),
        ("s3a://b/ck", False),
    ],
)
def test_only_local_checkpoint_paths_get_plain_files(path: str, local: bool) -> None:
    assert is_local_path(path) is local
