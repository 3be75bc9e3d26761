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
        return self.help or self.name

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
        return ", ".join(f"{k} {series.labels.get(k, '-')}" for k in varying if k != "__name__") or self.name


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
