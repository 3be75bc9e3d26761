"""Record every streaming progress event in PostgreSQL: the query's heartbeat.

Health checks read it to know the query is alive, and reports read batch sizes,
rates and Kafka offsets from it. Best effort: during a database outage progress
rows are dropped, never the query.
"""

from __future__ import annotations

import json
import logging

import psycopg2
from pyspark.sql.streaming import StreamingQueryListener

log = logging.getLogger("chaosbed.progress")

INSERT = """
INSERT INTO spark_progress (query_id, run_name, batch_id, num_input_rows, input_rows_per_second,
                            processed_rows_per_second, batch_duration_ms, end_offsets, latest_offsets)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def _offsets(text: str | None) -> str | None:
    # Spark reports offsets as JSON text; keep it only when it parses.
    if not text:
        return None
    try:
        return json.dumps(json.loads(text))
    except ValueError:
        return None


class ProgressRecorder(StreamingQueryListener):
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.last_batch_id = -1
        self.name: str | None = None

    def onQueryStarted(self, event: object) -> None:
        log.info("query started: %s", getattr(event, "id", "?"))

    def onQueryProgress(self, event: object) -> None:
        progress = event.progress  # type: ignore[attr-defined]
        self.last_batch_id, self.name = progress.batchId, progress.name
        # Where a batch's time goes (addBatch = our sink, walCommit/commitOffsets = the checkpoint).
        log.info(
            "batch %s: %s rows, durations %s", progress.batchId, progress.numInputRows, progress.durationMs
        )
        source = progress.sources[0] if progress.sources else None
        row = (
            str(progress.id),
            progress.name,
            progress.batchId,
            progress.numInputRows,
            progress.inputRowsPerSecond,
            progress.processedRowsPerSecond,
            (progress.durationMs or {}).get("triggerExecution"),
            _offsets(source.endOffset if source else None),
            _offsets(source.latestOffset if source else None),
        )
        self._record(row)

    def onQueryIdle(self, event: object) -> None:
        # Spark 4 reports an idle trigger as its own event, not as progress: a heartbeat row.
        self._record((str(event.id), self.name, self.last_batch_id, 0, 0.0, 0.0, None, None, None))  # type: ignore[attr-defined]

    def _record(self, row: tuple[object, ...]) -> None:
        try:
            with psycopg2.connect(self.dsn, connect_timeout=2) as conn, conn.cursor() as cur:
                cur.execute(INSERT, row)
            conn.close()
        except psycopg2.Error as exc:
            log.warning("progress of batch %s not recorded: %s", row[2], str(exc).strip())

    def onQueryTerminated(self, event: object) -> None:
        log.warning("query terminated: %s", getattr(event, "exception", None))
