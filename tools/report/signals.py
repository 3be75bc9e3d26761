"""A run's saved Prometheus range queries (metrics/<signal>.json), read back for the report.

The files are what the run saved while Prometheus was up; reading them needs no Prometheus, so a run
re-renders years later. A run without metrics/ (older runs) has no signals and the report says so.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.run.layout import METRICS_DIR

INDEX_FILE = "index.json"
COMPONENTS = ("kafka", "spark", "postgres", "producer", "chaos")

# Short names for the report's sentences and plot titles (a saved signal's "help" is a full sentence).
LABELS = {
    "kafka_under_replicated_partitions": "under-replicated partitions",
    "kafka_offline_partitions": "offline partitions",
    "kafka_isr_shrinks_per_second": "ISR shrinks",
    "kafka_isr_expands_per_second": "ISR expands",
    "kafka_leader_elections_per_second": "leadership changes",
    "kafka_active_controllers": "active controllers",
    "kafka_fenced_brokers": "fenced brokers",
    "kafka_produce_latency_p99_seconds": "broker produce p99",
    "jvm_gc_pause_seconds_per_second": "JVM GC pause time",
    "spark_input_rows_per_second": "Spark input rate",
    "spark_processed_rows_per_second": "Spark processed rate",
    "spark_batch_duration_seconds": "batch duration",
    "consumer_lag": "consumer lag",
    "pg_commits_per_second": "commits",
    "pg_connections": "connections",
    "producer_sent_per_second": "sends",
    "producer_acked_per_second": "acks",
    "producer_failed_per_second": "definite failures",
    "producer_indeterminate_per_second": "indeterminate outcomes",
    "producer_in_flight": "sends in flight",
    "producer_ack_latency_p99_seconds": "ack latency p99",
}
# Plotted around every fault, in this order (the list: what Kafka, Spark and PostgreSQL users read).
KEY_SIGNALS = (
    "kafka_under_replicated_partitions",
    "kafka_leader_elections_per_second",
    "kafka_isr_shrinks_per_second",
    "kafka_isr_expands_per_second",
    "consumer_lag",
    "pg_commits_per_second",
    "pg_connections",
    "jvm_gc_pause_seconds_per_second",
    "producer_acked_per_second",
)
_PREFIXES = ("kafka_", "spark_", "pg_", "producer_", "chaosbed_")
_SUFFIXES = ("_per_second", "_seconds")


def short_label(name: str) -> str:
    """LABELS, else the name without its component prefix and unit suffix, in words."""
    if name in LABELS:
        return LABELS[name]
    words = next((name[len(p) :] for p in _PREFIXES if name.startswith(p)), name)
    words = next((words[: -len(s)] for s in _SUFFIXES if words.endswith(s)), words)
    return words.replace("_", " ") or name


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[int, float]]  # (ms, value), sorted by time; NaN and infinities dropped

    def between(self, a_ms: int, b_ms: int) -> list[tuple[int, float]]:
        times = [t for t, _ in self.points]
        return self.points[bisect_left(times, a_ms) : bisect_right(times, b_ms)]


@dataclass(frozen=True)
class Signal:
    name: str
    help: str
    unit: str
    component: str
    series: list[Series]

    @property
    def label(self) -> str:
        return short_label(self.name)

    def total(self) -> list[tuple[int, float]]:
        """The sum over all series per timestamp (e.g. under-replicated partitions of all brokers)."""
        sums: dict[int, float] = {}
        for s in self.series:
            for t, v in s.points:
                sums[t] = sums.get(t, 0.0) + v
        return sorted(sums.items())

    def series_name(self, series: Series) -> str:
        """The labels that tell this signal's series apart (partition 2, instance kafka-1, ...)."""
        varying = sorted(
            k
            for k in {k for s in self.series for k in s.labels}
            if len({s.labels.get(k) for s in self.series}) > 1
        )
        return ", ".join(f"{k} {series.labels.get(k, '-')}" for k in varying if k != "__name__") or self.label


@dataclass(frozen=True)
class Metrics:
    signals: dict[str, Signal]
    notes: list[str]  # files that could not be read, said in the report instead of failing it

    def of(self, component: str) -> list[Signal]:
        return [s for s in self.signals.values() if s.component == component]


def _series(raw: Any) -> Series | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("values"), list):
        return None
    labels = raw.get("metric") if isinstance(raw.get("metric"), dict) else {}
    points = []
    for pair in raw["values"]:
        try:
            t, v = float(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError):
            continue
        if math.isfinite(v):
            points.append((round(t * 1000), v))
    points.sort()
    return Series({str(k): str(v) for k, v in labels.items()}, points)


def _signal(path: Path) -> Signal:
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("result"), list):
        raise ValueError("expected an object with a 'result' list")
    series = [s for s in map(_series, data["result"]) if s is not None and s.points]
    return Signal(
        name=str(data.get("signal") or path.stem),
        help=str(data.get("help") or ""),
        unit=str(data.get("unit") or ""),
        component=str(data.get("component") or "other"),
        series=series,
    )


def load_metrics(run_dir: Path) -> Metrics | None:
    """Every metrics/<signal>.json of the run; None when the run saved no metrics."""
    folder = run_dir / METRICS_DIR
    if not folder.is_dir():
        return None
    signals: dict[str, Signal] = {}
    notes: list[str] = []
    for path in sorted(folder.glob("*.json")):
        if path.name == INDEX_FILE:
            continue
        try:
            sig = _signal(path)
        except (OSError, ValueError) as exc:
            notes.append(f"{METRICS_DIR}/{path.name} unreadable, left out: {exc}")
            continue
        signals[sig.name] = sig
    return Metrics(signals, notes)
