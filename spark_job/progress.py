"""Record every streaming progress event in PostgreSQL: the query's heartbeat.

Health checks read it to know the query is alive, and reports read batch sizes,
rates and Kafka offsets from it. Best effort: during a database outage progress
rows are dropped, never the query.
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

import psycopg2
from psycopg2.extensions import connection
from pyspark.java_gateway import ensure_callback_server_started
from pyspark.sql import SparkSession

log = logging.getLogger("chaosbed.progress")

INSERT = """
INSERT INTO spark_progress (query_id, run_name, batch_id, num_input_rows, input_rows_per_second,
                            processed_rows_per_second, batch_duration_ms, end_offsets, latest_offsets)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""

# The Java interface PySpark's own listener wrapper implements (pyspark 4.0).
JAVA_LISTENER = "org.apache.spark.sql.streaming.PythonStreamingQueryListener"


def _offsets(value: Any) -> str | None:
    # Spark's progress JSON holds offsets as JSON (Kafka: {topic: {partition: offset}}); an offset it
    # could not parse arrives as a plain string and is left out.
    if value is None or isinstance(value, str):
        return None
    return json.dumps(value)


def progress_row(progress: dict[str, Any]) -> tuple[object, ...]:
    """The spark_progress row of one StreamingQueryProgress, given as Spark's own JSON."""
    sources = progress.get("sources") or []
    source = sources[0] if sources else {}
    return (
        str(progress["id"]),
        progress.get("name"),
        int(progress["batchId"]),
        int(progress.get("numInputRows") or 0),
        # Spark leaves NaN and infinite rates out of the JSON.
        progress.get("inputRowsPerSecond"),
        progress.get("processedRowsPerSecond"),
        (progress.get("durationMs") or {}).get("triggerExecution"),
        _offsets(source.get("endOffset")),
        _offsets(source.get("latestOffset")),
    )


class ProgressRecorder:
    """Writes one spark_progress row per progress event (and per idle heartbeat) over one connection."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.last_batch_id = -1
        self.name: str | None = None
        self._conn: connection | None = None

    def attach(self, spark: SparkSession) -> None:
        """Listen to `spark`'s streaming queries. Events arrive as Spark's JSON (one call back into the
        JVM per event): PySpark's StreamingQueryListener converts each event field by field over py4j,
        and at two batches a second that made the listener thread the driver's busiest (docs/tuning.md)."""
        gateway = spark.sparkContext._gateway
        if gateway is None:
            raise RuntimeError("no Spark gateway: the session is not running")
        ensure_callback_server_started(gateway)
        jvm = gateway.jvm
        wrapper = jvm.org.apache.spark.sql.streaming.PythonStreamingQueryListenerWrapper(_JsonEvents(self))
        spark._jsparkSession.streams().addListener(wrapper)

    def started(self, query_id: str) -> None:
        log.info("query started: %s", query_id)

    def progress(self, progress: dict[str, Any]) -> None:
        row = progress_row(progress)
        self.name, self.last_batch_id = row[1], row[2]
        # Where a batch's time goes (addBatch = our sink, walCommit/commitOffsets = the checkpoint).
        log.info("batch %s: %s rows, durations %s", row[2], row[3], progress.get("durationMs"))
        self._record(row)

    def idle(self, query_id: str) -> None:
        # Spark 4 reports an idle trigger as its own event, not as progress: a heartbeat row.
        self._record((query_id, self.name, self.last_batch_id, 0, 0.0, 0.0, None, None, None))

    def terminated(self, error: str | None) -> None:
        log.warning("query terminated: %s", error)
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _record(self, row: tuple[object, ...]) -> None:
        # A kept connection may have died with the server (an outage since the last event): one retry on
        # a new connection, so that the first event after PostgreSQL returns is not lost.
        for attempt in (1, 2):
            reused = self._conn is not None
            try:
                if self._conn is None:
                    self._conn = psycopg2.connect(self.dsn, connect_timeout=2)
                    self._conn.autocommit = True
                with self._conn.cursor() as cur:
                    cur.execute(INSERT, row)
                return
            except psycopg2.Error as exc:
                self.close()
                if not (reused and attempt == 1):
                    log.warning("progress of batch %s not recorded: %s", row[2], str(exc).strip())
                    return


class _JsonEvents:
    """The JVM's listener up-calls (py4j implements JAVA_LISTENER with this object; hence Java's method
    names)."""

    def __init__(self, recorder: ProgressRecorder) -> None:
        self.recorder = recorder

    def onQueryStarted(self, jevent: Any) -> None:
        self.recorder.started(jevent.id().toString())

    def onQueryProgress(self, jevent: Any) -> None:
        self.recorder.progress(json.loads(jevent.progress().json()))

    def onQueryIdle(self, jevent: Any) -> None:
        self.recorder.idle(jevent.id().toString())

    def onQueryTerminated(self, jevent: Any) -> None:
        error = jevent.exception()
        self.recorder.terminated(error.get() if error.isDefined() else None)

    class Java:
        implements: ClassVar[list[str]] = [JAVA_LISTENER]
