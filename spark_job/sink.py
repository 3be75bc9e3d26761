"""Write one micro-batch to PostgreSQL, exactly once per (query id, batch id).

Rows are COPYed into a temporary staging table, then moved into the sink table and
the batch is recorded in `sink_batches`, all in one transaction. A batch Spark runs
again (driver killed after our commit but before its own commit log) finds its
marker and is skipped, counted as a replay. Within the upsert, an id that arrives
twice (another Kafka offset, or a new checkpoint) bumps `events.deliveries`, so
duplicates stay visible although the table keeps one row per id.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions
import psycopg2.extras

log = logging.getLogger("chaosbed.sink")

# Errors that mean "the database is not there right now": retry them.
TRANSIENT_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)

STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS stage (
    run_id text, event_id bigint, topic text, kafka_partition integer,
    kafka_offset bigint, produced_at_ms bigint
) ON COMMIT DELETE ROWS
"""

FIND_BATCH = """
SELECT 1 FROM sink_batches WHERE query_id = %(query_id)s AND batch_id = %(batch_id)s FOR UPDATE
"""

COPY_STAGE = "COPY stage (run_id, event_id, topic, kafka_partition, kafka_offset, produced_at_ms) FROM STDIN"

UPSERT = """
WITH moved AS (
    INSERT INTO events (run_id, event_id, topic, kafka_partition, kafka_offset,
                        produced_at, query_id, batch_id, deliveries)
    SELECT DISTINCT ON (run_id, event_id)
           run_id, event_id, topic, kafka_partition, kafka_offset,
           to_timestamp(produced_at_ms / 1000.0), %(query_id)s, %(batch_id)s,
           count(*) OVER (PARTITION BY run_id, event_id)
      FROM stage
     ORDER BY run_id, event_id, kafka_partition, kafka_offset
    ON CONFLICT (run_id, event_id)
    DO UPDATE SET deliveries = events.deliveries + EXCLUDED.deliveries
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) FROM moved
"""

APPEND = """
INSERT INTO events_append (run_id, event_id, topic, kafka_partition, kafka_offset,
                           produced_at, query_id, batch_id)
SELECT run_id, event_id, topic, kafka_partition, kafka_offset,
       to_timestamp(produced_at_ms / 1000.0), %(query_id)s, %(batch_id)s
  FROM stage
"""

OFFSETS = """
SELECT coalesce(jsonb_object_agg(kafka_partition, jsonb_build_array(lo, hi)), '{}'::jsonb)
  FROM (SELECT kafka_partition, min(kafka_offset) AS lo, max(kafka_offset) AS hi
          FROM stage GROUP BY kafka_partition) AS p
"""

RECORD_BATCH = """
INSERT INTO sink_batches (query_id, batch_id, rows_staged, rows_inserted, offsets)
VALUES (%(query_id)s, %(batch_id)s, %(staged)s, %(inserted)s, %(offsets)s)
ON CONFLICT (query_id, batch_id) DO UPDATE SET replays = sink_batches.replays + 1
RETURNING replays
"""

COUNT_REPLAY = """
UPDATE sink_batches SET replays = replays + 1
WHERE query_id = %(query_id)s AND batch_id = %(batch_id)s RETURNING replays
"""

# Every execution of a batch (0 = the first, n = its n-th replay), in the marker's transaction.
RECORD_READ = """
INSERT INTO sink_batch_reads (query_id, batch_id, execution, start_offsets, end_offsets, rows_read,
                              rows_digest)
VALUES (%(query_id)s, %(batch_id)s, %(execution)s, %(start)s, %(end)s, %(staged)s, %(digest)s)
ON CONFLICT DO NOTHING
"""


# run_id, event_id, topic, partition, offset, produced_at_ms
Row = tuple[str, int, str, int, int, int]
# partition (text) -> offset: where a batch started and ended reading, from the checkpoint
Offsets = dict[str, int]


def rows_digest(rows: Iterable[Row]) -> dict[str, list[int]]:
    """Per partition [rows, min offset, max offset, sum of offsets]: what a batch handed to the sink,
    compared between a batch and its replays (replay-divergence)."""
    out: dict[int, list[int]] = {}
    for row in rows:
        part, off = row[3], row[4]
        d = out.get(part)
        if d is None:
            out[part] = [1, off, off, off]
        else:
            d[0] += 1
            d[1] = min(d[1], off)
            d[2] = max(d[2], off)
            d[3] += off
    return {str(p): d for p, d in sorted(out.items())}


@dataclass(frozen=True)
class BatchResult:
    staged: int
    inserted: int
    replayed: bool


def to_copy_text(rows: Iterable[Row]) -> io.StringIO:
    """Rows as PostgreSQL COPY text (tab-separated; our fields never hold tabs or newlines)."""
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join(str(field) for field in row))
        buf.write("\n")
    buf.seek(0)
    return buf


class PostgresSink:
    """One connection, reused across batches and re-opened after an outage."""

    def __init__(self, dsn: str, mode: str = "upsert", retry_seconds: float = 3600.0) -> None:
        self.dsn = dsn
        self.mode = mode
        self.retry_seconds = retry_seconds
        self._conn: psycopg2.extensions.connection | None = None

    def _connection(self) -> psycopg2.extensions.connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(
                self.dsn,
                # libpq's minimum: a connection attempt that began while PostgreSQL was away is given
                # up sooner after it returns (its address answers nothing until the container is back).
                connect_timeout=2,
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=2,
                application_name="chaosbed-spark-sink",
            )
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self._conn.close()
        self._conn = None

    def write(
        self,
        query_id: str,
        batch_id: int,
        rows: list[Row],
        reads: tuple[Offsets | None, Offsets | None] = (None, None),
    ) -> BatchResult:
        """Write the batch, retrying through database outages (capped backoff) until retry_seconds.
        `reads`: the (start, end) offsets the batch read, recorded with it (sink_batch_reads)."""
        deadline = time.monotonic() + self.retry_seconds
        backoff = 0.25
        digest = psycopg2.extras.Json(rows_digest(rows))
        start, end = (None if o is None else psycopg2.extras.Json(o) for o in reads)
        read = {"start": start, "end": end, "staged": len(rows), "digest": digest}
        while True:
            try:
                return self._write_once(query_id, batch_id, rows, read)
            except TRANSIENT_ERRORS as exc:
                self._drop_connection()
                if time.monotonic() > deadline:
                    raise
                log.warning(
                    "batch %s: database unavailable (%s); retrying in %.2fs",
                    batch_id,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else exc,
                    backoff,
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    def _write_once(
        self, query_id: str, batch_id: int, rows: list[Row], read: dict[str, object]
    ) -> BatchResult:
        conn = self._connection()
        params = {"query_id": query_id, "batch_id": batch_id}
        try:
            with conn.cursor() as cur:
                if self.mode == "upsert":
                    # Lock the marker row if it exists: a replayed batch stops here.
                    cur.execute(FIND_BATCH, params)
                    if cur.fetchone() is not None:
                        cur.execute(COUNT_REPLAY, params)
                        cur.execute(RECORD_READ, {**params, **read, "execution": cur.fetchone()[0]})
                        conn.commit()
                        return BatchResult(staged=len(rows), inserted=0, replayed=True)
                cur.execute(STAGE_DDL)
                cur.copy_expert(COPY_STAGE, to_copy_text(rows))
                cur.execute(OFFSETS)
                offsets = cur.fetchone()[0]
                if self.mode == "upsert":
                    cur.execute(UPSERT, params)
                    inserted = int(cur.fetchone()[0])
                else:
                    cur.execute(APPEND, params)
                    inserted = cur.rowcount
                cur.execute(
                    RECORD_BATCH,
                    {
                        **params,
                        "staged": len(rows),
                        "inserted": inserted,
                        "offsets": psycopg2.extras.Json(offsets),
                    },
                )
                cur.execute(RECORD_READ, {**params, **read, "execution": cur.fetchone()[0]})
            conn.commit()
        except BaseException:
            if not conn.closed:
                with contextlib.suppress(psycopg2.Error):
                    conn.rollback()
            raise
        return BatchResult(staged=len(rows), inserted=inserted, replayed=False)
