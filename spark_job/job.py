"""Build the Spark session and run the streaming query: Kafka `events` -> PostgreSQL."""

from __future__ import annotations

import glob
import logging
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from spark_job.checkpoint import batch_offsets
from spark_job.progress import ProgressRecorder
from spark_job.settings import Settings
from spark_job.sink import BatchResult, Offsets, PostgresSink, StagingMismatch

log = logging.getLogger("chaosbed.job")

# When this process began running the job (module import): start-up phases are logged against it.
PROCESS_STARTED = time.monotonic()

EVENT_SCHEMA = StructType(
    [
        StructField("run_id", StringType()),
        StructField("event_id", LongType()),
        StructField("produced_at_ms", LongType()),
    ]
)


def build_session(
    settings: Settings, app_name: str = "chaosbed-events", java_options: str | None = None
) -> SparkSession:
    """The job's session. `java_options` replaces the driver's JVM options (the image build passes the
    class-data dump option); by default the image's archive is used when it is there."""
    jars = sorted(glob.glob(os.path.join(settings.jars_dir, "*.jar")))
    builder = SparkSession.builder
    if settings.master.startswith("local"):
        # One JVM runs driver and tasks: the jars go on its class path, where the application class
        # loader reads them (the class-data archive can hold only such classes) and no task has to copy
        # them first. Executors elsewhere need spark.jars, which ships them.
        builder = builder.config("spark.driver.extraClassPath", os.pathsep.join(jars))
    else:
        builder = builder.config("spark.jars", ",".join(jars))
        # The executors' sink tasks log in to PostgreSQL as the driver does.
        if "PGPASSWORD" in os.environ:
            builder = builder.config("spark.executorEnv.PGPASSWORD", os.environ["PGPASSWORD"])
    for name, value in settings.spark_conf.items():
        builder = builder.config(name, value)
    if java_options is None and os.path.isfile(settings.cds_archive):
        # Classes mapped from the image's archive instead of loaded and verified one by one; a JDK or
        # class path that does not match it only costs a warning (-Xshare:auto).
        java_options = f"-XX:SharedArchiveFile={settings.cds_archive}"
    if java_options:
        builder = builder.config("spark.driver.extraJavaOptions", java_options)
    if is_local_path(settings.checkpoint):
        builder = local_checkpoint_files(builder)
    # The sink's tasks run Python: by default this interpreter, which has the job's packages (the
    # workers' image and VM install have it at the same path).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if settings.ui_port:
        builder = prometheus_endpoints(builder, settings.ui_port)
    spark = (
        builder.appName(app_name)
        # local[N,F]: F task attempts; plain local[N] never retries a failed task.
        .master(settings.master)
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.ui.enabled", str(bool(settings.ui_port)).lower())
        # The console progress bar is for terminals; in a service log it is noise and costs a thread.
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.streaming.noDataProgressEventInterval", "5000")
        .getOrCreate()
    )
    # The sink's tasks run spark_job code in the executors' Python workers: ship the package.
    spark.sparkContext.addPyFile(package_zip())
    return spark


def package_zip() -> str:
    """spark_job as a zip in a fresh temporary directory (Python imports packages from zips)."""
    package = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(tempfile.mkdtemp(prefix="chaosbed-job-"), "spark_job.zip")
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted(glob.glob(os.path.join(package, "*.py"))):
            zf.write(path, os.path.join("spark_job", os.path.basename(path)))
    return out


def prometheus_endpoints(builder: SparkSession.Builder, port: int) -> SparkSession.Builder:
    """Spark's own Prometheus endpoints on its UI port: the driver's metrics (with the streaming query's
    input and processing rates and batch duration) at /metrics/prometheus, the executors' at
    /metrics/executors/prometheus. The UI keeps few finished jobs: a micro-batch every 500 ms adds one."""
    return (
        builder.config("spark.ui.port", str(port))
        .config("spark.ui.prometheus.enabled", "true")
        .config("spark.metrics.namespace", "chaosbed")
        .config(
            "spark.metrics.conf.*.sink.prometheusServlet.class",
            "org.apache.spark.metrics.sink.PrometheusServlet",
        )
        .config("spark.metrics.conf.*.sink.prometheusServlet.path", "/metrics/prometheus")
        .config("spark.sql.streaming.metricsEnabled", "true")
        .config("spark.ui.retainedJobs", "50")
        .config("spark.ui.retainedStages", "50")
        .config("spark.ui.retainedTasks", "2000")
        .config("spark.sql.ui.retainedExecutions", "20")
        .config("spark.sql.streaming.numRecentProgressUpdates", "20")
    )


def is_local_path(path: str) -> bool:
    return "://" not in path or path.startswith("file:")


def local_checkpoint_files(builder: SparkSession.Builder) -> SparkSession.Builder:
    """Checkpoint files on a local disk without Hadoop's shell-outs. Without Hadoop's native library its
    local file system forks `readlink` or `chmod` for renames and checksummed files: ~4 processes from
    the driver per micro-batch, each costing the offset and commit log writes tens of milliseconds
    (docs/tuning.md). The plain-file manager writes a temporary file and renames it, which POSIX makes
    atomic; the raw file system drops the .crc side files. Only for local paths: on object stores a
    rename is not atomic, and Spark picks its own manager there."""
    return builder.config(
        "spark.sql.streaming.checkpointFileManagerClass",
        "org.apache.spark.sql.execution.streaming.FileSystemBasedCheckpointFileManager",
    ).config("spark.hadoop.fs.file.impl", "org.apache.hadoop.fs.RawLocalFileSystem")


def events_stream(spark: SparkSession, settings: Settings) -> DataFrame:
    raw = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.bootstrap_servers)
        .option("subscribe", settings.topic)
        .option("startingOffsets", settings.starting_offsets)
        .option("failOnDataLoss", str(settings.fail_on_data_loss).lower())
        .option("maxOffsetsPerTrigger", settings.max_offsets_per_trigger)
        # Ride out a broker failover inside the task instead of failing it.
        .option("kafkaConsumer.pollTimeoutMs", settings.poll_timeout_ms)
        # A failed offset lookup is retried with a fresh client, which finds a partition's new leader.
        .option("fetchOffset.numRetries", settings.fetch_offset_retries)
        .option("fetchOffset.retryIntervalMs", settings.fetch_offset_retry_interval_ms)
        # The Kafka client settings (spark_kafka_properties, then spark_kafka_options): docs/tuning.md.
        .options(**{f"kafka.{name}": value for name, value in settings.kafka_client().items()})
        .load()
    )
    event = F.from_json(F.col("value").cast("string"), EVENT_SCHEMA)
    return raw.select(
        event["run_id"].alias("run_id"),
        event["event_id"].alias("event_id"),
        F.col("topic"),
        F.col("partition"),
        F.col("offset"),
        event["produced_at_ms"].alias("produced_at_ms"),
    ).where(F.col("event_id").isNotNull() & F.col("run_id").isNotNull())


def crash_once(marker: str) -> None:
    """Die like a SIGKILLed driver, once per container (the marker file remembers it)."""
    if os.path.exists(marker):
        return
    with open(marker, "w") as fh:
        fh.write("fired\n")
    log.warning("failpoint crash-after-commit: exiting before Spark records the batch")
    os._exit(137)


def failpoint_fires(failpoint: str, run_ids: frozenset[str], inserted: int) -> bool:
    """`crash-after-commit` fires on any written batch; `crash-after-commit:<run id>` only on one
    holding that run's events, so that other traffic cannot trigger it."""
    kind, _, run_id = failpoint.partition(":")
    if kind != "crash-after-commit" or inserted == 0:
        return False
    return not run_id or run_id in run_ids


# In the container's own filesystem: survives `docker start`, not a recreated container.
FAILPOINT_MARKER = "/tmp/chaosbed-failpoint-fired"

# Stagings of one batch before it fails: another is needed only when the stage lost rows meanwhile.
STAGE_TRIES = 3


def write_staged(
    sink: PostgresSink,
    batch: DataFrame,
    query_id: str,
    batch_id: int,
    reads: tuple[Offsets | None, Offsets | None],
) -> BatchResult:
    """The executors stage the batch (one task per partition), the driver commits it; staged again if
    the stage lost rows in between (StagingMismatch)."""
    for tries_left in range(STAGE_TRIES - 1, -1, -1):
        sink.begin(query_id, batch_id)
        staged = batch.rdd.mapPartitions(sink.stager(query_id, batch_id)).collect()
        try:
            return sink.commit(query_id, batch_id, staged, reads)
        except StagingMismatch as exc:
            if not tries_left:
                raise
            log.warning("%s; staging the batch again", exc)
    raise AssertionError("unreachable")


def make_batch_writer(
    sink: PostgresSink, failpoint: str = "", checkpoint: str = ""
) -> Callable[[DataFrame, int], None]:
    def write_batch(batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        query_id = batch.sparkSession.sparkContext.getLocalProperty("sql.streaming.queryId") or "unknown"
        # Spark wrote offsets/<batch_id> before running the batch: the range it claims to read.
        reads = batch_offsets(checkpoint, batch_id) if checkpoint else (None, None)
        result = write_staged(sink, batch, query_id, batch_id, reads)
        log.info(
            "batch %d: %d rows, %d inserted%s%s in %.0f ms",
            batch_id,
            result.staged,
            result.inserted,
            " (replay skipped)" if result.replayed else "",
            f" ({result.retried_tasks} tasks retried)" if result.retried_tasks else "",
            (time.monotonic() - started) * 1000,
        )
        if failpoint_fires(failpoint, result.run_ids, result.inserted):
            crash_once(FAILPOINT_MARKER)

    return write_batch


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    settings = Settings.from_env()
    if settings.reset_checkpoint and os.path.isdir(settings.checkpoint):
        # The unsafe-offsets profile: start over from `startingOffsets`, skipping what came meanwhile.
        log.warning("unsafe-offsets: removing checkpoint %s", settings.checkpoint)
        shutil.rmtree(settings.checkpoint)
    spark = build_session(settings)
    spark.sparkContext.setLogLevel("WARN")
    log.info("Spark session up %.1f s after start", time.monotonic() - PROCESS_STARTED)
    ProgressRecorder(settings.postgres_dsn).attach(spark)
    sink = PostgresSink(settings.postgres_dsn, settings.sink_mode, settings.sink_retry_seconds)
    query = (
        events_stream(spark, settings)
        .writeStream.queryName("chaosbed-events")
        .foreachBatch(make_batch_writer(sink, settings.failpoint, settings.checkpoint))
        .option("checkpointLocation", settings.checkpoint)
        .trigger(processingTime=settings.trigger_interval)
        .start()
    )
    log.info(
        "streaming %s -> PostgreSQL (%s sink), checkpoint %s; query started %.1f s after start",
        settings.topic,
        settings.sink_mode,
        settings.checkpoint,
        time.monotonic() - PROCESS_STARTED,
    )
    query.awaitTermination()
