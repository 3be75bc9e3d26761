"""What the report reads from the sink's database for one run: rows and latency per second, latency
percentiles over the run and over a baseline window, Spark's progress (a summary, lag per partition) and
Spark's batch executions (tools/spark_reruns.py).

`tools experiment run` saves every answer the report read at the run's end (SINK_DATA_FILE, written by
SinkReader.save), and a later report prefers that copy: a re-render after the database was reset, or with
--offline, shows the same numbers. A run without the copy (older, or made by hand) is queried.
Aggregates are computed in PostgreSQL (per-second buckets of committed_at, percentile_cont), so the
Python side holds one object per second (per progress event for the lag), never one per row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import connection

from tools.errors import ToolError
from tools.recovery import SecondStats
from tools.run.clock import now_iso
from tools.run.layout import OLD_SPARK_BATCHES_FILE, SINK_DATA_FILE
from tools.run.meta import write_json_atomic
from tools.spark_reruns import Executions, query_executions

Span = tuple[int, int]  # [start_ms, end_ms] of epoch milliseconds
Lag = dict[int, list[tuple[int, int]]]  # partition -> (ms, lag) points


@dataclass(frozen=True)
class Latency:
    rows: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    first_commit_ms: int
    last_commit_ms: int


@dataclass(frozen=True)
class SparkSummary:
    progress_events: int
    batches_with_rows: int
    query_ids: int
    input_rows: int
    batch_ms_p50: float | None
    batch_ms_max: float | None
    processed_rps_max: float | None


def _latency_sql(table: str) -> sql.Composed:
    return sql.SQL(
        "SELECT committed_at, extract(epoch FROM (committed_at - produced_at)) * 1000 AS lat "
        "FROM {} WHERE run_id = %(run_id)s"
    ).format(sql.Identifier(table))


def query_series(conn: connection, run_id: str, table: str) -> list[SecondStats]:
    """Rows committed and p50/p99 end-to-end latency per second of committed_at."""
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                """SELECT floor(extract(epoch FROM committed_at))::bigint AS sec, count(*),
                          percentile_cont(0.5) WITHIN GROUP (ORDER BY lat),
                          percentile_cont(0.99) WITHIN GROUP (ORDER BY lat)
                   FROM ({}) t GROUP BY 1 ORDER BY 1"""
            ).format(_latency_sql(table)),
            {"run_id": run_id},
        )
        return [SecondStats(int(s), int(n), float(p50), float(p99)) for s, n, p50, p99 in cur.fetchall()]


def query_latency(conn: connection, run_id: str, table: str, window: Span | None = None) -> Latency | None:
    """Latency percentiles over all of the run's rows, or those committed in [start_ms, end_ms)."""
    where = ""
    params: dict[str, Any] = {"run_id": run_id}
    if window is not None:
        where = (
            "WHERE committed_at >= to_timestamp(%(a)s / 1000.0)"
            " AND committed_at < to_timestamp(%(b)s / 1000.0)"
        )
        params.update(a=window[0], b=window[1])
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                """SELECT count(*), percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY lat),
                          max(lat),
                          floor(extract(epoch FROM min(committed_at)) * 1000)::bigint,
                          floor(extract(epoch FROM max(committed_at)) * 1000)::bigint
                   FROM ({}) t """
                + where
            ).format(_latency_sql(table)),
            params,
        )
        n, pct, mx, first, last = cur.fetchone()
    if not n:
        return None
    return Latency(int(n), float(pct[0]), float(pct[1]), float(pct[2]), float(mx), int(first), int(last))


def query_spark(conn: connection, span: Span) -> SparkSummary | None:
    """spark_progress rows reported in the span (the table has no run id: matched by time)."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT count(*), count(*) FILTER (WHERE num_input_rows > 0), count(DISTINCT query_id),
                      coalesce(sum(num_input_rows), 0),
                      percentile_cont(0.5) WITHIN GROUP (ORDER BY batch_duration_ms)
                          FILTER (WHERE num_input_rows > 0),
                      max(batch_duration_ms) FILTER (WHERE num_input_rows > 0),
                      max(processed_rows_per_second)
               FROM spark_progress
               WHERE reported_at >= to_timestamp(%s / 1000.0) AND reported_at <= to_timestamp(%s / 1000.0)""",
            span,
        )
        n, with_rows, qids, rows, p50, mx, rps = cur.fetchone()
    if not n:
        return None
    return SparkSummary(
        int(n),
        int(with_rows),
        int(qids),
        int(rows),
        None if p50 is None else float(p50),
        None if mx is None else float(mx),
        None if rps is None else float(rps),
    )


def query_lag(conn: connection, topic: str, span: Span) -> Lag:
    """Spark's lag behind the log per partition at each progress event of the span: the latest offset
    Kafka had minus the end offset of the batch (spark_progress)."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT (extract(epoch FROM p.reported_at) * 1000)::bigint, e.key::int,
                      (p.latest_offsets -> %(topic)s ->> e.key)::bigint - e.value::bigint
               FROM spark_progress p, jsonb_each_text(p.end_offsets -> %(topic)s) e
               WHERE p.reported_at >= to_timestamp(%(lo)s / 1000.0)
                 AND p.reported_at <= to_timestamp(%(hi)s / 1000.0)
                 AND p.latest_offsets ? %(topic)s
               ORDER BY 1""",
            {"topic": topic, "lo": span[0], "hi": span[1]},
        )
        out: Lag = {}
        for ms, part, lag in cur.fetchall():
            if lag is not None:
                out.setdefault(int(part), []).append((int(ms), int(lag)))
    return out


@dataclass
class _Answers:
    """Every answer read, by what was asked (series: key None, the run's whole series)."""

    series: dict[None, list[SecondStats]] = field(default_factory=dict)
    latency: dict[Span | None, Latency | None] = field(default_factory=dict)
    spark: dict[Span, SparkSummary | None] = field(default_factory=dict)
    lag: dict[tuple[str, Span], Lag] = field(default_factory=dict)
    # key None: the run's batch executions, over the span they were read for (Executions says which)
    executions: dict[None, Executions] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        series = self.series.get(None)
        executions = self.executions.get(None)
        return {
            "series": None if series is None else [[s.sec, s.rows, s.p50_ms, s.p99_ms] for s in series],
            "latency": [
                {"window": None if w is None else list(w), "latency": None if v is None else asdict(v)}
                for w, v in self.latency.items()
            ],
            "spark": [
                {"span": list(s), "summary": None if v is None else asdict(v)} for s, v in self.spark.items()
            ],
            "lag": [
                {
                    "topic": t,
                    "span": list(s),
                    "partitions": {str(p): [list(x) for x in v] for p, v in lag.items()},
                }
                for (t, s), lag in self.lag.items()
            ],
            "spark_batches": None if executions is None else executions.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Answers:
        series = data["series"]
        latency = data["latency"]
        executions = data.get("spark_batches")  # absent from copies saved before it was part of them
        return cls(
            series={}
            if series is None
            else {None: [SecondStats(int(s), int(n), _float(p50), _float(p99)) for s, n, p50, p99 in series]},
            latency={
                _span(x["window"]): None if x["latency"] is None else Latency(**x["latency"]) for x in latency
            },
            spark={
                _span(x["span"]): None if x["summary"] is None else SparkSummary(**x["summary"])
                for x in data["spark"]
            },
            lag={
                (str(x["topic"]), _span(x["span"])): {
                    int(p): [(int(ms), int(v)) for ms, v in points] for p, points in x["partitions"].items()
                }
                for x in data["lag"]
            },
            executions={} if executions is None else {None: Executions.from_json(executions)},
        )


def _span(value: Any) -> Any:
    return None if value is None else (int(value[0]), int(value[1]))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


class SinkReader:
    """The sink's answers for one run: from the run's saved copy when it holds them, else queried (conn);
    neither: no answer, and a note says so. Every answer given is kept, so save() writes what was read."""

    def __init__(
        self,
        run_id: str,
        table: str,
        conn: connection | None,
        saved: _Answers | None = None,
        saved_at: str | None = None,
    ) -> None:
        self.run_id, self.table, self.conn = run_id, table, conn
        self.saved = saved or _Answers()
        self.saved_at = saved_at  # when the saved copy was written; None: no saved copy
        self.read = _Answers()
        self.queries = 0  # questions the saved copy did not answer, asked of the database
        self.notes: list[str] = []

    @classmethod
    def open(cls, run_dir: Path, run_id: str, table: str, conn: connection | None) -> SinkReader | None:
        """The run's saved copy (if it is of this table) before the database; None: neither."""
        path, old = run_dir / SINK_DATA_FILE, run_dir / OLD_SPARK_BATCHES_FILE
        saved, saved_at = None, None
        try:
            if path.is_file():
                data = json.loads(path.read_text())
                if data["sink_table"] == table:
                    saved, saved_at = _Answers.from_json(data), str(data["saved_at"])
            if saved is None and conn is None:
                return None
            saved = saved or _Answers()
            if not saved.executions and old.is_file():  # a run that saved them in a file of their own
                path = old
                saved.executions[None] = Executions.from_json(json.loads(old.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ToolError(f"corrupt {path}: {exc}") from None
        return cls(run_id, table, conn, saved, saved_at)

    def has(self, kind: str, key: Any) -> bool:
        """Whether a question (kind: series, latency, spark, lag, executions) has an answer: read, saved or
        asked."""
        return self.conn is not None or key in getattr(self.read, kind) or key in getattr(self.saved, kind)

    def _answer(self, kind: str, key: Any, query: Callable[[connection], Any], empty: Any, what: str) -> Any:
        got: dict[Any, Any] = getattr(self.read, kind)
        if key not in got:
            saved: dict[Any, Any] = getattr(self.saved, kind)
            if key in saved:
                got[key] = saved[key]
            elif self.conn is not None:
                got[key] = query(self.conn)
                self.queries += 1
            else:
                self.notes.append(f"{SINK_DATA_FILE} holds no {what} and no database was queried")
                return empty
        return got[key]

    def series(self) -> list[SecondStats]:
        """Rows committed and p50/p99 latency per second of the run."""
        return self._answer(
            "series", None, lambda c: query_series(c, self.run_id, self.table), [], "per-second series"
        )

    def latency(self, window: Span | None = None) -> Latency | None:
        """Over all of the run's rows, or those committed in [start_ms, end_ms)."""
        return self._answer(
            "latency",
            window,
            lambda c: query_latency(c, self.run_id, self.table, window),
            None,
            "latency of the run" if window is None else f"latency over {window[0]}..{window[1]} ms",
        )

    def saved_windows(self) -> list[Span]:
        """The windows the saved copy has latency over (the baselines the run saved)."""
        return [w for w in self.saved.latency if w is not None]

    def spark(self, span: Span) -> SparkSummary | None:
        return self._answer("spark", span, lambda c: query_spark(c, span), None, "Spark progress of the span")

    def lag(self, topic: str, span: Span) -> Lag:
        return self._answer(
            "lag", (topic, span), lambda c: query_lag(c, topic, span), {}, "Spark lag of the span"
        )

    def executions(self, span: Span) -> Executions | None:
        """Spark's batch executions committed in [start_ms, end_ms); a saved copy may cover another span."""
        return self._answer(
            "executions",
            None,
            lambda c: Executions(query_executions(c, *span), *span),
            None,
            "Spark batch executions",
        )

    def save(self, run_dir: Path) -> Path:
        """Write every answer read so far to the run's SINK_DATA_FILE (one line: it is read, not edited)."""
        path = run_dir / SINK_DATA_FILE
        record = {
            "saved_at": now_iso(),
            "run_id": self.run_id,
            "sink_table": self.table,
            **self.read.to_json(),
        }
        write_json_atomic(path, record, indent=None)
        return path
