"""<run>/experiment.jsonl: the phases of `tools experiment run`, one line as it enters each, and plan.json.

`tools chaos watch` reads them to say where an experiment is; the report reads plan.json to say which
faults the scenario declared concurrent.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.run.clock import iso_from_ms, now_ms
from tools.run.jsonl import JsonlFile, read_jsonl
from tools.run.layout import EXPERIMENT_FILE, PLAN_FILE
from tools.run.meta import write_json_atomic

# In order. "start": the producer runs, waiting for the run's first rows in the sink.
PHASES = ("start", "baseline", "chaos", "cooldown", "settle", "validate", "report", "done")


@dataclass(frozen=True)
class Phase:
    name: str
    start_ms: int
    planned_s: float | None  # how long it is meant to take; None: until it is done (settle, validate)
    pid: int | None
    extra: dict[str, Any]

    def left_s(self, at_ms: int) -> float | None:
        if self.planned_s is None:
            return None
        return max(0.0, self.start_ms / 1000 + self.planned_s - at_ms / 1000)


class PhaseLog:
    """The appender, used by `tools experiment run` (a line is on disk when enter() returns)."""

    def __init__(self, run_dir: Path) -> None:
        self._file = JsonlFile(run_dir / EXPERIMENT_FILE)

    def enter(self, phase: str, planned_s: float | None = None, **extra: Any) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        ms = now_ms()
        record = {"phase": phase, "time": iso_from_ms(ms), "ts_ms": ms, "pid": os.getpid()}
        if planned_s is not None:
            record["planned_s"] = planned_s
        self._file.append(record | extra)


def read_phases(run_dir: Path) -> list[Phase]:
    out = []
    for r in read_jsonl(run_dir / EXPERIMENT_FILE):
        name, ts = r.get("phase"), r.get("ts_ms")
        if not isinstance(name, str) or not isinstance(ts, int):
            continue
        planned, pid = r.get("planned_s"), r.get("pid")
        known = {"phase", "time", "ts_ms", "pid", "planned_s"}
        out.append(
            Phase(
                name,
                ts,
                float(planned) if isinstance(planned, int | float) else None,
                pid if isinstance(pid, int) else None,
                {k: v for k, v in r.items() if k not in known},
            )
        )
    return out


def write_plan(run_dir: Path, plan: dict[str, Any]) -> None:
    write_json_atomic(run_dir / PLAN_FILE, plan)


def read_plan(run_dir: Path) -> dict[str, Any] | None:
    """plan.json, or None when the run has none (a run made without `tools experiment run`)."""
    try:
        data = json.loads((run_dir / PLAN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("faults"), list) else None
