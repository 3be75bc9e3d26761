"""Image build step: run a short streaming query so the JVM dumps the classes it loaded into a CDS archive.

The streaming job then starts its driver with -XX:SharedArchiveFile (spark_job/job.py): class loading
and verification are most of a restarted driver's start-up on two busy cores. Usage (in the image):
    python3 spark-cds-train.py /opt/spark-cds/spark.jsa
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
import tempfile

from pyspark import SparkContext
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


def main(archive: str) -> None:
    jars = sorted(glob.glob(os.path.join(os.environ.get("CHAOSBED_SPARK_JARS", "/opt/spark-jars"), "*.jar")))
    spark = (
        SparkSession.builder.appName("chaosbed-cds-training")
        .master("local[2,4]")
        .config("spark.driver.memory", "1g")
        .config("spark.jars", ",".join(jars))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.extraJavaOptions", f"-XX:ArchiveClassesAtExit={archive}")
        .getOrCreate()
    )
    seen: list[int] = []

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        seen.extend(r[0] for r in batch.collect())

    schema = "run_id string, event_id long, produced_at_ms long"
    events = (
        spark.readStream.format("rate")
        .option("rowsPerSecond", 100)
        .load()
        .select(
            F.to_json(F.struct(F.lit("r").alias("run_id"), F.col("value").alias("event_id"))).alias("value")
        )
        .select(F.from_json(F.col("value"), schema)["event_id"].alias("event_id"))
    )
    with tempfile.TemporaryDirectory() as checkpoint:
        query = (
            events.writeStream.foreachBatch(write_batch)
            .option("checkpointLocation", checkpoint)
            .trigger(processingTime="500 milliseconds")
            .start()
        )
        while query.lastProgress is None or query.lastProgress["batchId"] < 3:
            query.awaitTermination(0.5)
        query.stop()
    gateway = SparkContext._gateway
    spark.stop()
    # The archive is written while the JVM exits; wait for that instead of leaving it half written.
    with contextlib.suppress(Exception):  # the JVM drops the connection as it exits, as intended
        gateway.jvm.System.exit(0)
    gateway.proc.wait(timeout=600)
    if not os.path.getsize(archive):
        raise SystemExit(f"error: no CDS archive at {archive}")
    print(f"CDS archive {archive}: {os.path.getsize(archive) // 2**20} MiB, trained on {len(seen)} rows")


if __name__ == "__main__":
    main(sys.argv[1])
