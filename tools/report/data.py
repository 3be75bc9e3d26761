"""Everything the report shows, gathered from the run directory and the sink's figures for the run
(tools/report/sink.py: the copy saved with the run, else a query of the sink)."""

from __future__ import annotations

import json
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

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
from tools.report.sink import Latency, SinkReader, SparkSummary
from tools.run.clock import ms_from_iso, now_iso
from tools.run.layout import LEDGER_FILE, SINK_DATA_FILE, VALIDATION_FILE
from tools.run.meta import check_sink_table, load_run
from tools.run.phases import read_plan
from tools.run.timeline import Fault, read_faults
from tools.spark_reruns import Executions

AFTER_FAULT_S = 60  # how long after a fault's end its producer-side effects are attributed to it


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
    # Spark's batch executions (tools/spark_reruns.py) and the [start_ms, end_ms) they cover; None: the
    # sink was not queried and the run saved none.
    spark_batches: Executions | None = None
    no_baseline: str = ""  # why there is no baseline (when there is none)
    # Where the sink's figures came from: the copy saved with the run (when it was written), a query.
    sink_saved_at: str | None = None
    sink_queried: bool = False

    @property
    def sink_table(self) -> str:
        return str(self.run["sink_table"])


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
    sink: SinkReader | None = None,
) -> ReportData:
    """Read the run directory and the sink's figures for the run: the copy saved with it, else (when conn is
    given) a query; nothing is estimated. sink: read through that reader instead (save_sink_data)."""
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
    if sink is None:
        sink = SinkReader.open(run_dir, run["run_id"], table, conn)
    series: list[SecondStats] = []
    latency = None
    if sink is not None:
        series = sink.series()
        latency = sink.latency()
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
    spark = sink.spark((start_ms, end_ms + AFTER_FAULT_S * 1000)) if sink is not None else None
    lag = sink.lag(run.get("topic") or "events", (start_ms, end_ms)) if sink is not None else {}
    spark_batches = sink.executions((start_ms, end_ms + AFTER_FAULT_S * 1000)) if sink is not None else None

    baseline = None
    no_baseline = f"the sink was not queried (`--offline`) and the run saved no `{SINK_DATA_FILE}`"
    recoveries: list[FaultRecovery] = []
    if faults and sink is not None:
        first = faults[0].window.start_ms
        window = baseline_start_ms(first, params, start_ms), first
        if not sink.has("latency", window):
            saved = ", ".join(f"{(b - a) / 1000:g} s" for a, b in sink.saved_windows()) or "none"
            no_baseline = (
                f"`{SINK_DATA_FILE}` holds no baseline of {params.baseline_s} s before the first fault "
                f"(saved: {saved}) and the sink was not queried"
            )
        else:
            base = sink.latency(window)
            baseline = make_baseline(
                series, base.p99_ms if base else None, base.rows if base else 0, first, params, start_ms
            )
            if baseline is None:
                no_baseline = "no rows committed before the first fault, so no baseline"
                notes.append(
                    "no rows were committed before the first fault: no baseline, recovery not measured"
                )
            else:
                windows = [f.window for f in faults]
                recoveries = recover_faults(
                    windows, series, baseline, producer_running(ledger), end_ms, params
                )
    if sink is not None:
        notes += sink.notes
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
        no_baseline=no_baseline,
        sink_saved_at=sink.saved_at if sink is not None else None,
        sink_queried=bool(sink and sink.queries),
    )


def save_sink_data(run_dir: Path, conn: connection, baselines_s: Iterable[int]) -> Path:
    """Save in the run directory everything the report reads from the sink for the run (SINK_DATA_FILE),
    with the baseline windows of `baselines_s` seconds, so a re-render needs no database."""
    run = load_run(run_dir)
    sink = SinkReader(run["run_id"], check_sink_table(run["sink_table"]), conn)
    for seconds in dict.fromkeys(baselines_s):
        gather(run_dir, None, RecoveryParams(baseline_s=seconds), sink=sink)
    return sink.save(run_dir)
