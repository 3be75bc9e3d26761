"""Everything the report shows, gathered from the run directory and a fresh query of the sink.

Aggregates are computed in PostgreSQL (per-second buckets of committed_at, percentile_cont), so
the Python side holds one object per second, never one per row.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import connection

from tools import ranges
from tools.errors import ToolError
from tools.ledger import LedgerState, load_ledger
from tools.recovery import (
    Baseline,
    FaultRecovery,
    KindSummary,
    RecoveryParams,
    SecondStats,
    baseline_start_ms,
    make_baseline,
    overlaps,
    recover_faults,
    summarize_by_kind,
)
from tools.report.signals import Metrics, load_metrics
from tools.run.clock import ms_from_iso, now_iso
from tools.run.layout import LEDGER_FILE, VALIDATION_FILE
from tools.run.meta import check_sink_table, load_run
from tools.run.phases import read_plan
from tools.run.timeline import Fault, read_faults
from tools.spark_reruns import Execution, load_executions, query_executions

AFTER_FAULT_S = 60  # how long after a fault's end its producer-side effects are attributed to it


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


@dataclass(frozen=True)
class FaultEffect:
    """What the data shows during one fault."""

    fault_id: str
    rows_per_s: float | None  # sink commits per second during the fault window
    longest_ack_gap_s: float | None  # producer: longest time without an ack in [start, end + 60 s]
    failed_ids: int  # producer: definite failures recorded in that window
    indeterminate_ids: int  # producer: errors with unknown outcome recorded in that window
    sessions_started: int  # producer (re)starts in that window


@dataclass
class ReportData:
    run_dir: Path
    run: dict[str, Any]
    generated_at: str
    params: RecoveryParams
    ledger: LedgerState | None
    faults: list[Fault]
    validation: dict[str, Any] | None
    series: list[SecondStats]
    latency: Latency | None
    spark: SparkSummary | None
    baseline: Baseline | None
    recoveries: list[FaultRecovery]
    kinds: list[KindSummary]  # over applied faults only (Fault.applied)
    overlapping: dict[str, list[str]]
    effects: dict[str, FaultEffect]
    ack_series: list[tuple[int, int]]  # (epoch second, acks recorded in that second)
    start_ms: int
    end_ms: int
    notes: list[str] = field(default_factory=list)
    # Spark's consumer lag per partition (latest - end offset, per progress event): (ms, lag) points.
    lag: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    # plan.json: fault (short id, e.g. 09-kafka-3) -> the faults the scenario declared concurrent with it.
    concurrent: dict[str, set[str]] = field(default_factory=dict)
    concurrent_groups: list[str] = field(default_factory=list)  # "09-kafka-3 (name) with 10-spark (name)"
    metrics: Metrics | None = None  # the run's saved Prometheus range queries; None: the run saved none
    # Spark's batch executions (tools/spark_reruns.py) and the [start_ms, end_ms) they cover: saved in the
    # run directory, else queried from the sink; None: neither.
    spark_batches: tuple[list[Execution], int, int] | None = None

    @property
    def sink_table(self) -> str:
        return str(self.run["sink_table"])


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


def query_latency(
    conn: connection, run_id: str, table: str, start_ms: int | None = None, end_ms: int | None = None
) -> Latency | None:
    """Latency percentiles over all of the run's rows, or those committed in [start_ms, end_ms)."""
    window = ""
    params: dict[str, Any] = {"run_id": run_id}
    if start_ms is not None and end_ms is not None:
        window = (
            "WHERE committed_at >= to_timestamp(%(a)s / 1000.0)"
            " AND committed_at < to_timestamp(%(b)s / 1000.0)"
        )
        params.update(a=start_ms, b=end_ms)
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                """SELECT count(*), percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY lat),
                          max(lat),
                          floor(extract(epoch FROM min(committed_at)) * 1000)::bigint,
                          floor(extract(epoch FROM max(committed_at)) * 1000)::bigint
                   FROM ({}) t """
                + window
            ).format(_latency_sql(table)),
            params,
        )
        n, pct, mx, first, last = cur.fetchone()
    if not n:
        return None
    return Latency(int(n), float(pct[0]), float(pct[1]), float(pct[2]), float(mx), int(first), int(last))


def query_spark(conn: connection, start_ms: int, end_ms: int) -> SparkSummary | None:
    """spark_progress rows reported during the run (the table has no run id: matched by time)."""
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
            (start_ms, end_ms),
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


def query_lag(conn: connection, topic: str, start_ms: int, end_ms: int) -> dict[int, list[tuple[int, int]]]:
    """Spark's lag behind the log per partition at each progress event of the run's span: the latest
    offset Kafka had minus the end offset of the batch (spark_progress)."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT (extract(epoch FROM p.reported_at) * 1000)::bigint, e.key::int,
                      (p.latest_offsets -> %(topic)s ->> e.key)::bigint - e.value::bigint
               FROM spark_progress p, jsonb_each_text(p.end_offsets -> %(topic)s) e
               WHERE p.reported_at >= to_timestamp(%(lo)s / 1000.0)
                 AND p.reported_at <= to_timestamp(%(hi)s / 1000.0)
                 AND p.latest_offsets ? %(topic)s
               ORDER BY 1""",
            {"topic": topic, "lo": start_ms, "hi": end_ms},
        )
        out: dict[int, list[tuple[int, int]]] = {}
        for ms, part, lag in cur.fetchall():
            if lag is not None:
                out.setdefault(int(part), []).append((int(ms), int(lag)))
    return out


def load_validation(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / VALIDATION_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ToolError(f"unreadable {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ToolError(f"corrupt {path}: expected a JSON object")
    return data


def ack_series(ledger: LedgerState) -> list[tuple[int, int]]:
    """Acks recorded per second (ledger flush time, ~0.1 s after the broker's ack)."""
    counts: dict[int, int] = {}
    for a in ledger.acks:
        sec = a.ts_ms // 1000
        counts[sec] = counts.get(sec, 0) + a.last - a.first + 1
    return sorted(counts.items())


def producer_running(ledger: LedgerState | None) -> list[tuple[int, int]]:
    """Each session from its start to its last record (heartbeats keep that current)."""
    return [(s.start_ms, s.last_ms) for s in ledger.sessions] if ledger else []


def fault_effects(
    faults: list[Fault], series: list[SecondStats], ledger: LedgerState | None, data_end_ms: int
) -> dict[str, FaultEffect]:
    secs = [s.sec for s in series]
    ack_ts = sorted(a.ts_ms for a in ledger.acks) if ledger else []
    out = {}
    for f in faults:
        w = f.window
        end = w.end_ms if w.end_ms is not None else data_end_ms
        rows_per_s = None
        if series and end > w.start_ms:  # no series: the sink was not queried (--offline)
            lo, hi = (
                bisect_left(secs, math.ceil(w.start_ms / 1000)),
                bisect_left(secs, math.floor(end / 1000)),
            )
            whole = math.floor(end / 1000) - math.ceil(w.start_ms / 1000)
            if whole > 0:
                rows_per_s = sum(s.rows for s in series[lo:hi]) / whole
        gap = failed = indet = started = None
        if ledger is not None:
            a, b = w.start_ms, min(end + AFTER_FAULT_S * 1000, max(data_end_ms, end))
            inside = ack_ts[bisect_left(ack_ts, a) : bisect_right(ack_ts, b)]
            points = [a, *inside, b]
            gap = max(y - x for x, y in pairwise(points)) / 1000
            failed = sum(r.last - r.first + 1 for r in ledger.failures if a <= r.ts_ms <= b)
            indet = sum(r.last - r.first + 1 for r in ledger.infos if a <= r.ts_ms <= b)
            started = sum(1 for s in ledger.sessions if a <= s.start_ms <= b)
        out[w.fault_id] = FaultEffect(w.fault_id, rows_per_s, gap, failed or 0, indet or 0, started or 0)
    return out


def declared_concurrency(run_dir: Path) -> tuple[dict[str, set[str]], list[str]]:
    """Which faults the scenario declared concurrent (`concurrent_with: <name>`), by short fault id."""
    plan = read_plan(run_dir)
    rows = [r for r in (plan or {}).get("faults", []) if isinstance(r, dict)]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_name.setdefault(str(r.get("name")), []).append(r)
    pairs: dict[str, set[str]] = {}
    groups = []
    for r in rows:
        for other in by_name.get(str(r.get("concurrent_with")), []) if r.get("concurrent_with") else []:
            a, b = str(r.get("id")), str(other.get("id"))
            pairs.setdefault(a, set()).add(b)
            pairs.setdefault(b, set()).add(a)
            groups.append(f"{b} ({other.get('name')}) with {a} ({r.get('name')})")
    return pairs, groups


def gather(
    run_dir: Path,
    conn: connection | None,
    params: RecoveryParams,
    sink_table: str | None = None,
) -> ReportData:
    """Read the run directory and (when conn is given) query the sink; nothing is estimated."""
    run = load_run(run_dir)
    if sink_table:
        run["sink_table"] = sink_table
    table = check_sink_table(run["sink_table"])
    notes: list[str] = []
    ledger = load_ledger(run_dir) if (run_dir / LEDGER_FILE).exists() else None
    faults, timeline_notes = read_faults(run_dir)
    concurrent, groups = declared_concurrency(run_dir)
    notes += timeline_notes
    validation = load_validation(run_dir)
    metrics = load_metrics(run_dir)
    if metrics is not None:
        notes += metrics.notes
    series: list[SecondStats] = []
    latency = None
    if conn is not None:
        series = query_series(conn, run["run_id"], table)
        latency = query_latency(conn, run["run_id"], table)
    # The run's time span: from run.json's start to the last thing any source recorded.
    candidates_end = [f.window.end_ms or f.window.start_ms for f in faults]
    if latency:
        candidates_end.append(latency.last_commit_ms)
    if ledger and ledger.sessions:
        candidates_end.append(max(s.last_ms for s in ledger.sessions))
    if run.get("ended_at"):
        candidates_end.append(ms_from_iso(run["ended_at"]))
    start_ms = ms_from_iso(run["started_at"]) if run.get("started_at") else min(candidates_end, default=0)
    end_ms = max(candidates_end, default=start_ms)
    spark = query_spark(conn, start_ms, end_ms + AFTER_FAULT_S * 1000) if conn is not None else None
    lag = query_lag(conn, run.get("topic") or "events", start_ms, end_ms) if conn is not None else {}
    spark_batches = load_executions(run_dir)
    if spark_batches is None and conn is not None:
        span = start_ms, end_ms + AFTER_FAULT_S * 1000
        spark_batches = query_executions(conn, *span), *span

    baseline = None
    recoveries: list[FaultRecovery] = []
    if faults and conn is not None:
        first = faults[0].window.start_ms
        base_from = baseline_start_ms(first, params, start_ms)
        base = query_latency(conn, run["run_id"], table, base_from, first)
        baseline = make_baseline(
            series, base.p99_ms if base else None, base.rows if base else 0, first, params, start_ms
        )
        if baseline is None:
            notes.append("no rows were committed before the first fault: no baseline, recovery not measured")
        else:
            windows = [f.window for f in faults]
            recoveries = recover_faults(windows, series, baseline, producer_running(ledger), end_ms, params)
    if validation is not None and latency is not None:
        validated = validation.get("validated_at")
        if isinstance(validated, str) and ms_from_iso(validated) < latency.last_commit_ms:
            notes.append(
                f"validation.json ({validated}) predates the last sink commit of this run: "
                "re-run `tools validate`"
            )
    if ledger is not None and ranges.total(ledger.acked()) == 0:
        notes.append("the ledger records no acknowledged event")
    return ReportData(
        run_dir=run_dir,
        run=run,
        generated_at=now_iso(),
        params=params,
        ledger=ledger,
        faults=faults,
        validation=validation,
        series=series,
        latency=latency,
        spark=spark,
        baseline=baseline,
        recoveries=recoveries,
        kinds=summarize_by_kind([r for r, f in zip(recoveries, faults, strict=False) if f.applied]),
        overlapping=overlaps([r for r, f in zip(recoveries, faults, strict=False) if f.applied]),
        effects=fault_effects(faults, series, ledger, end_ms),
        ack_series=ack_series(ledger) if ledger else [],
        start_ms=start_ms,
        end_ms=end_ms,
        notes=notes,
        lag=lag,
        concurrent=concurrent,
        concurrent_groups=groups,
        metrics=metrics,
        spark_batches=spark_batches,
    )
