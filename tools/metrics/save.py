"""Save a run's window of every signal from Prometheus into the run directory (metrics/), so the report
re-renders offline, with no Prometheus running.

metrics/<signal>.json = {"signal", "help", "unit", "component", "query", "start", "end", "step", "result"}
with `result` the data.result matrix of /api/v1/query_range; metrics/index.json = {"prometheus",
"saved_at", "signals"}. Format and signals: docs/metrics.md.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from tools.metrics.signals import SIGNALS, Signal
from tools.run.layout import METRICS_DIR

INDEX_FILE = "index.json"
# The scrape interval (roles/prometheus); a longer window gets a coarser step (Prometheus returns at most
# 11,000 points per series).
DEFAULT_STEP_S = 2.0
MAX_POINTS = 10_000
TIMEOUT_S = 10.0


class PrometheusUnavailable(Exception):
    """Prometheus did not answer: saving is skipped."""


@dataclass
class SaveResult:
    saved: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # signal -> why its query failed


def step_for(start: float, end: float, step: float = DEFAULT_STEP_S) -> float:
    return max(step, math.ceil((end - start) / MAX_POINTS))


def query_range(url: str, query: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    """data.result of one range query; PrometheusUnavailable when Prometheus cannot be reached, ValueError
    when it refuses the query."""
    try:
        resp = requests.get(
            f"{url.rstrip('/')}/api/v1/query_range",
            params={"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
            timeout=TIMEOUT_S,
        )
    except requests.RequestException as exc:
        raise PrometheusUnavailable(f"Prometheus at {url} did not answer: {type(exc).__name__}") from None
    try:
        body = resp.json()
    except ValueError:
        raise PrometheusUnavailable(
            f"Prometheus at {url} answered HTTP {resp.status_code}, not JSON"
        ) from None
    if body.get("status") != "success":
        raise ValueError(f"{body.get('errorType', 'error')}: {body.get('error', resp.status_code)}")
    return list(body["data"]["result"])


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    os.replace(tmp, path)


def save_metrics(
    run_dir: Path,
    url: str,
    start: float,
    end: float,
    step: float = DEFAULT_STEP_S,
    signals: Iterable[Signal] = SIGNALS,
) -> SaveResult:
    """Range-query every signal over [start, end] (epoch seconds) and write metrics/. Raises
    PrometheusUnavailable (nothing written) when Prometheus does not answer the first query."""
    step = step_for(start, end, step)
    out = run_dir / METRICS_DIR
    result = SaveResult()
    for signal in signals:
        try:
            matrix = query_range(url, signal.query, start, end, step)
        except ValueError as exc:
            result.failed[signal.name] = str(exc)
            continue
        except PrometheusUnavailable:
            if not result.saved and not result.failed:
                raise
            result.failed[signal.name] = "Prometheus stopped answering"
            continue
        out.mkdir(exist_ok=True)
        _write_json(
            out / f"{signal.name}.json",
            {
                "signal": signal.name,
                "help": signal.help,
                "unit": signal.unit,
                "component": signal.component,
                "query": signal.query,
                "start": start,
                "end": end,
                "step": step,
                "result": matrix,
            },
        )
        result.saved.append(signal.name)
    if result.saved:
        _write_json(
            out / INDEX_FILE,
            {
                "prometheus": url,
                "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "signals": result.saved,
            },
        )
    return result


def load_signal(run_dir: Path, name: str) -> dict[str, Any] | None:
    """One saved signal, or None when the run has none."""
    path = run_dir / METRICS_DIR / f"{name}.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data
