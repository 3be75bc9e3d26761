"""Write one micro-batch to PostgreSQL, exactly once per (query id, batch id), from the executors.

Each task COPYs its partition's rows into `sink_stage`, keyed by (query id, batch id, Spark partition),
in one transaction that first drops what an earlier attempt of the same partition staged (a retried
task never doubles its rows). The driver then, in ONE transaction, checks that the staged rows are
the ones the tasks reported, moves them into the sink table, records the batch in `sink_batches` and
its read in `sink_batch_reads`, and deletes them from the stage. A batch Spark runs again (driver
killed after our commit but before its own commit log) finds its marker and is skipped, counted as a
replay; what a crashed execution left staged is deleted before a batch is staged again. Within the
upsert, an id that arrives twice (another Kafka offset, or a new checkpoint) bumps `events.deliveries`,
so duplicates stay visible although the table keeps one row per id.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions
import psycopg2.extras

log = logging.getLogger("chaosbed.sink")

# Errors that mean "the database is not there right now": retry them.
TRANSIENT_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)

# What the move checks and reads: this batch's staged rows.
STAGED = "sink_stage WHERE query_id = %(query_id)s AND batch_id = %(batch_id)s"

# One attempt of a partition at a time (a speculative or zombie attempt waits), and what an earlier
# attempt staged is replaced, not added to.
LOCK_PARTITION = "SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0))"
UNSTAGE_PARTITION = f"DELETE FROM {STAGED} AND spark_partition = %(part)s"
COPY_STAGE = (
    "COPY sink_stage (query_id, batch_id, spark_partition, run_id, event_id, topic, kafka_partition,"
    " kafka_offset, produced_at_ms) FROM STDIN"
)

# A batch about to be staged: what a crashed execution of it (or of an earlier batch: a task that
# committed after its batch moved on) left behind.
UNSTAGE_UP_TO = "DELETE FROM sink_stage WHERE query_id = %(query_id)s AND batch_id <= %(batch_id)s"
UNSTAGE_BATCH = f"DELETE FROM {STAGED}"

FIND_BATCH = """
SELECT 1 FROM sink_batches WHERE query_id = %(query_id)s AND batch_id = %(batch_id)s FOR UPDATE
"""

COUNT_STAGED = f"SELECT count(*) FROM {STAGED}"

UPSERT = f"""
WITH moved AS (
    INSERT INTO events (run_id, event_id, topic, kafka_partition, kafka_offset,
                        produced_at, query_id, batch_id, deliveries)
    SELECT DISTINCT ON (run_id, event_id)
           run_id, event_id, topic, kafka_partition, kafka_offset,
           to_timestamp(produced_at_ms / 1000.0), %(query_id)s, %(batch_id)s,
           count(*) OVER (PARTITION BY run_id, event_id)
      FROM {STAGED}
     ORDER BY run_id, event_id, kafka_partition, kafka_offset
    ON CONFLICT (run_id, event_id)
    DO UPDATE SET deliveries = events.deliveries + EXCLUDED.deliveries
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) FROM moved
"""

APPEND = f"""
INSERT INTO events_append (run_id, event_id, topic, kafka_partition, kafka_offset,
                           produced_at, query_id, batch_id)
SELECT run_id, event_id, topic, kafka_partition, kafka_offset,
       to_timestamp(produced_at_ms / 1000.0), %(query_id)s, %(batch_id)s
  FROM {STAGED}
"""

# Per Kafka partition: [min, max] offset (the marker's `offsets`) and [rows, min, max, sum of offsets]
# (the read's digest, compared between a batch and its replays: replay-divergence).
OFFSETS_AND_DIGEST = f"""
SELECT coalesce(jsonb_object_agg(kafka_partition, jsonb_build_array(lo, hi)), '{{}}'::jsonb),
       coalesce(jsonb_object_agg(kafka_partition, jsonb_build_array(n, lo, hi, total)), '{{}}'::jsonb)
  FROM (SELECT kafka_partition, count(*) AS n, min(kafka_offset) AS lo, max(kafka_offset) AS hi,
               sum(kafka_offset)::bigint AS total
          FROM {STAGED} GROUP BY kafka_partition) AS p
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
                              rows_digest, tasks, retried_tasks)
VALUES (%(query_id)s, %(batch_id)s, %(execution)s, %(start)s, %(end)s, %(staged)s, %(digest)s,
        %(tasks)s, %(retried_tasks)s)
ON CONFLICT DO NOTHING
"""


# run_id, event_id, topic, partition, offset, produced_at_ms
Row = tuple[str, int, str, int, int, int]
# partition (text) -> offset: where a batch started and ended reading, from the checkpoint
Offsets = dict[str, int]

T = TypeVar("T")


@dataclass(frozen=True)
class Staged:
    """What one task staged: its Spark partition, the attempt that succeeded (0 = the first), its rows
    and the run ids among them."""

    partition: int
    attempt: int
    rows: int
    run_ids: frozenset[str]


@dataclass(frozen=True)
class BatchResult:
    staged: int
    inserted: int
    replayed: bool
    run_ids: frozenset[str] = frozenset()
    # Tasks whose staging took more than one attempt (Spark re-ran them).
    retried_tasks: int = 0


class StagingMismatch(RuntimeError):
    """The stage does not hold what the tasks reported (e.g. PostgreSQL crashed and emptied the
    unlogged stage between staging and the move): the batch is staged again."""


def to_copy_text(rows: Iterable[tuple[Any, ...]]) -> io.StringIO:
    """Rows as PostgreSQL COPY text (tab-separated; our fields never hold tabs or newlines)."""
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join(r"\N" if field is None else str(field) for field in row))
        buf.write("\n")
    buf.seek(0)
    return buf


def connect(dsn: str) -> psycopg2.extensions.connection:
    return psycopg2.connect(
        dsn,
        # libpq's minimum: a connection attempt that began while PostgreSQL was away is given
        # up sooner after it returns (its address answers nothing until the container is back).
        connect_timeout=2,
        keepalives=1,
        keepalives_idle=5,
        keepalives_interval=2,
        keepalives_count=2,
        application_name="chaosbed-spark-sink",
    )


class Connection:
    """One connection, reused across transactions and re-opened after an outage; `retrying` runs a
    transaction again through database outages (capped backoff) until `retry_seconds`."""

    def __init__(self, dsn: str, retry_seconds: float) -> None:
        self.dsn = dsn
        self.retry_seconds = retry_seconds
        self._conn: psycopg2.extensions.connection | None = None

    def get(self) -> psycopg2.extensions.connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.dsn)
        return self._conn

    def drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self._conn.close()
        self._conn = None

    def transaction(self, body: Callable[[Any], T]) -> T:
        conn = self.get()
        try:
            with conn.cursor() as cur:
                out = body(cur)
            conn.commit()
            return out
        except BaseException:
            if not conn.closed:
                with contextlib.suppress(psycopg2.Error):
                    conn.rollback()
            raise

    def retrying(self, what: str, body: Callable[[Any], T]) -> T:
        deadline = time.monotonic() + self.retry_seconds
        backoff = 0.25
        while True:
            try:
                return self.transaction(body)
            except TRANSIENT_ERRORS as exc:
                self.drop()
                if time.monotonic() > deadline:
                    raise
                text = str(exc).strip()
                log.warning(
                    "%s: database unavailable (%s); retrying in %.2fs",
                    what,
                    text.splitlines()[0] if text else exc,
                    backoff,
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, 1.0)


# One connection per Python worker process and database, reused by the tasks it runs (Spark reuses
# its Python workers), so that a task does not pay a connection set-up per batch.
_TASK_CONNECTIONS: dict[str, Connection] = {}


def stage_rows(
    conn: Connection, query_id: str, batch_id: int, partition: int, rows: list[tuple[Any, ...]]
) -> None:
    params = {
        "query_id": query_id,
        "batch_id": batch_id,
        "part": partition,
        "key": f"{query_id}/{batch_id}/{partition}",
    }
    text = to_copy_text((query_id, batch_id, partition, *row) for row in rows)

    def body(cur: Any) -> None:
        text.seek(0)
        cur.execute(LOCK_PARTITION, params)
        cur.execute(UNSTAGE_PARTITION, params)
        cur.copy_expert(COPY_STAGE, text)

    conn.retrying(f"batch {batch_id} partition {partition}", body)


def stage_partition(
    dsn: str, retry_seconds: float, query_id: str, batch_id: int, rows: Iterator[Any]
) -> Iterator[Staged]:
    """The task's part of a batch (runs on an executor): COPY its rows into the stage; yields one
    Staged for the driver."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    partition, attempt = (ctx.partitionId(), ctx.attemptNumber()) if ctx is not None else (0, 0)
    data = [tuple(r) for r in rows]
    conn = _TASK_CONNECTIONS.get(dsn)
    if conn is None:
        conn = _TASK_CONNECTIONS[dsn] = Connection(dsn, retry_seconds)
    stage_rows(conn, query_id, batch_id, partition, data)
    yield Staged(partition, attempt, len(data), frozenset(r[0] for r in data))


class PostgresSink:
    """The driver's side: clean a batch's stage, then move what the tasks staged in one transaction."""

    def __init__(self, dsn: str, mode: str = "upsert", retry_seconds: float = 3600.0) -> None:
        self.dsn = dsn
        self.mode = mode
        self.retry_seconds = retry_seconds
        self._conn = Connection(dsn, retry_seconds)

    def _drop_connection(self) -> None:
        self._conn.drop()

    def stager(self, query_id: str, batch_id: int) -> Callable[[Iterator[Any]], Iterator[Staged]]:
        """The function each task runs on its partition (picklable: no connection in it)."""
        return functools.partial(stage_partition, self.dsn, self.retry_seconds, query_id, batch_id)

    def begin(self, query_id: str, batch_id: int) -> None:
        """Delete what an earlier, unfinished execution of this batch (or a late task of an earlier
        batch) left in the stage."""
        params = {"query_id": query_id, "batch_id": batch_id}
        self._conn.retrying(f"batch {batch_id}", lambda cur: cur.execute(UNSTAGE_UP_TO, params))

    def write(
        self,
        query_id: str,
        batch_id: int,
        rows: list[Row],
        reads: tuple[Offsets | None, Offsets | None] = (None, None),
    ) -> BatchResult:
        """The whole batch from this process: stage the rows as one partition, then commit them."""
        self.begin(query_id, batch_id)
        stage_rows(self._conn, query_id, batch_id, 0, list(rows))
        staged = Staged(0, 0, len(rows), frozenset(r[0] for r in rows))
        return self.commit(query_id, batch_id, [staged], reads)

    def commit(
        self,
        query_id: str,
        batch_id: int,
        staged: list[Staged],
        reads: tuple[Offsets | None, Offsets | None] = (None, None),
    ) -> BatchResult:
        """Move the staged batch into the sink and record it, in one transaction (retried through
        database outages). `reads`: the (start, end) offsets the batch read (sink_batch_reads).
        Raises StagingMismatch when the stage does not hold the rows the tasks reported."""
        rows = sum(s.rows for s in staged)
        start, end = (None if o is None else psycopg2.extras.Json(o) for o in reads)
        retried = sum(1 for s in staged if s.attempt > 0)
        params = {"query_id": query_id, "batch_id": batch_id}
        read = {
            **params,
            "start": start,
            "end": end,
            "staged": rows,
            "tasks": len(staged),
            "retried_tasks": retried,
        }
        run_ids = frozenset().union(*(s.run_ids for s in staged))

        def body(cur: Any) -> BatchResult:
            if self.mode == "upsert":
                # Lock the marker row if it exists: a replayed batch is only counted.
                cur.execute(FIND_BATCH, params)
                replayed = cur.fetchone() is not None
            else:
                replayed = False
            cur.execute(COUNT_STAGED, params)
            found = int(cur.fetchone()[0])
            if found != rows:
                raise StagingMismatch(f"batch {batch_id}: {found} rows staged, the tasks staged {rows}")
            cur.execute(OFFSETS_AND_DIGEST, params)
            offsets, digest = cur.fetchone()
            read["digest"] = psycopg2.extras.Json(digest)
            if replayed:
                cur.execute(COUNT_REPLAY, params)
                inserted = 0
            else:
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
                        "staged": rows,
                        "inserted": inserted,
                        "offsets": psycopg2.extras.Json(offsets),
                    },
                )
            cur.execute(RECORD_READ, {**read, "execution": cur.fetchone()[0]})
            cur.execute(UNSTAGE_BATCH, params)
            return BatchResult(rows, inserted, replayed, run_ids, retried)

        return self._conn.retrying(f"batch {batch_id}", body)
