"""Sink retention: the rows of all but the newest runs leave the pipeline's database.

Every run adds its ids to the sink tables and an audit of the whole topic to `kafka_log`; with nothing
removed, the database fills its capped volume after a few dozen runs. A pruned run keeps its directory
(its report re-renders from sink_data.json) and is recorded in `pruned_runs`, so `tools validate`
refuses it instead of finding every id missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg2 import sql

from tools.errors import EXIT_BAD_INPUT, ToolError

# Tables with one row per (run, id), and the run-keyed audit bounds.
RUN_TABLES = ("events", "events_append", "kafka_log", "kafka_log_audits")
# Tables keyed by Spark query and batch, not by run: rows older than the oldest kept run, less this margin
# (a run starts up to FIRST_ROWS_TIMEOUT_S before its first row, and its report reads from its start).
BATCH_TABLES_MARGIN = "1 hour"
# Runs whose rows an experiment keeps by default (`--keep-runs`, chaos_keep_runs).
DEFAULT_KEEP_RUNS = 10

_DISTINCT_RUNS = """
WITH RECURSIVE r(run_id) AS (
    (SELECT run_id FROM {table} ORDER BY run_id LIMIT 1)
    UNION ALL
    SELECT (SELECT t.run_id FROM {table} t WHERE t.run_id > r.run_id ORDER BY t.run_id LIMIT 1)
    FROM r WHERE r.run_id IS NOT NULL
)
SELECT run_id FROM r WHERE run_id IS NOT NULL"""

# When each run began in each table, read through the tables' (run_id, ...) indexes.
_FIRST_SEEN = {
    "events": "SELECT min(committed_at) FROM events WHERE run_id = %s",
    "events_append": "SELECT committed_at FROM events_append WHERE run_id = %s ORDER BY event_id LIMIT 1",
    "kafka_log_audits": "SELECT min(audited_at) FROM kafka_log_audits WHERE run_id = %s",
}


def check_keep(keep: int) -> int:
    """How many runs to keep, refused below 1 (exit 2): retention never empties the sink."""
    if keep < 1:
        raise ToolError(f"--keep-runs must be at least 1, got {keep}", EXIT_BAD_INPUT)
    return keep


@dataclass
class Pruned:
    kept: list[str] = field(default_factory=list)  # newest first
    pruned: dict[str, int] = field(default_factory=dict)  # run id -> rows removed from the run tables
    batch_rows: int = 0  # rows removed from the batch-keyed tables

    def summary(self, keep: int) -> str:
        if not self.pruned:
            return f"retention: {len(self.kept)} runs in the sink, none beyond the newest {keep}"
        rows = sum(self.pruned.values())
        return (
            f"retention: removed {rows:,} rows of {len(self.pruned)} older runs "
            f"(and {self.batch_rows:,} batch rows), keeping the newest {keep}"
        )


def runs_by_age(cur: Any) -> list[tuple[str, datetime | None]]:
    """Every run with rows in the sink's run tables, newest first; a run with no time (a `kafka_log`
    left without its audit bounds) sorts as the oldest."""
    runs: set[str] = set()
    for table in RUN_TABLES:
        cur.execute(sql.SQL(_DISTINCT_RUNS).format(table=sql.Identifier(table)))
        runs.update(row[0] for row in cur.fetchall())
    seen: list[tuple[str, datetime | None]] = []
    for run_id in runs:
        times = []
        for query in _FIRST_SEEN.values():
            cur.execute(query, (run_id,))
            row = cur.fetchone()
            if row and row[0] is not None:
                times.append(row[0])
        seen.append((run_id, min(times) if times else None))
    return sorted(seen, key=lambda item: (item[1] is not None, item[1] or 0, item[0]), reverse=True)


def prune_runs(
    conn: Any,
    keep: int,
    protect: Iterable[str] = (),
    progress: Callable[[str], None] | None = None,
    dry_run: bool = False,
) -> Pruned:
    """Remove every row of the runs beyond the newest `keep` (never those in `protect`), then the
    batch-keyed rows older than the oldest kept run; each run in its own transaction. A dry run only
    lists them (0 rows each)."""
    check_keep(keep)
    protected = set(protect)
    with conn, conn.cursor() as cur:
        ordered = runs_by_age(cur)
    result = Pruned()
    for index, (run_id, _) in enumerate(ordered):
        if index < keep or run_id in protected:
            result.kept.append(run_id)
            continue
        if dry_run:
            result.pruned[run_id] = 0
            continue
        if progress:
            progress(f"removing run {run_id}")
        removed = 0
        with conn, conn.cursor() as cur:
            for table in RUN_TABLES:
                cur.execute(
                    sql.SQL("DELETE FROM {} WHERE run_id = %s").format(sql.Identifier(table)), (run_id,)
                )
                removed += cur.rowcount
            cur.execute(
                "INSERT INTO pruned_runs (run_id, rows_removed) VALUES (%s, %s) ON CONFLICT (run_id) DO "
                "UPDATE SET pruned_at = clock_timestamp(), rows_removed = EXCLUDED.rows_removed",
                (run_id, removed),
            )
        result.pruned[run_id] = removed
    oldest_kept = [seen for run_id, seen in ordered if run_id in result.kept and seen is not None]
    if result.pruned and oldest_kept and not dry_run:
        result.batch_rows = _prune_batch_tables(conn, min(oldest_kept))
    return result


def _prune_batch_tables(conn: Any, oldest_kept: datetime) -> int:
    """Spark's progress and the sink's batch markers and reads from before the kept runs. Each query's
    newest marker stays: it is what skips that batch if a restarted driver runs it again."""
    params = {"cutoff": oldest_kept, "margin": BATCH_TABLES_MARGIN}
    removed = 0
    with conn, conn.cursor() as cur:
        cur.execute(
            "DELETE FROM spark_progress WHERE reported_at < %(cutoff)s - %(margin)s::interval", params
        )
        removed += cur.rowcount
        cur.execute(
            "DELETE FROM sink_batch_reads r WHERE committed_at < %(cutoff)s - %(margin)s::interval "
            "AND batch_id < (SELECT max(batch_id) FROM sink_batch_reads m WHERE m.query_id = r.query_id)",
            params,
        )
        removed += cur.rowcount
        cur.execute(
            "DELETE FROM sink_batches b WHERE committed_at < %(cutoff)s - %(margin)s::interval "
            "AND batch_id < (SELECT max(batch_id) FROM sink_batches m WHERE m.query_id = b.query_id)",
            params,
        )
        removed += cur.rowcount
    return removed


def pruned_at(conn: Any, run_id: str) -> datetime | None:
    """When the run's rows were removed, or None (never, or the schema predates retention)."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('pruned_runs') IS NOT NULL")
        row = cur.fetchone()
        if not row or not row[0]:
            return None
        cur.execute("SELECT pruned_at FROM pruned_runs WHERE run_id = %s", (run_id,))
        found = cur.fetchone()
    return found[0] if found else None


def forget_pruned(conn: Any, run_id: str) -> None:
    """A new run under a pruned run's id starts clean (its rows are the new run's)."""
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM pruned_runs WHERE run_id = %s", (run_id,))
