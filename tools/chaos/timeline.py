"""runs/<run_id>/timeline.jsonl: one line per fault when it ends, for the report's fault windows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.chaos.jsonl import JsonlFile, read_jsonl

TIMELINE_NAME = "timeline.jsonl"
OUTCOMES = ("ok", "target-vanished", "unsupported", "failed: <why>", "interrupted", "restored-after-crash")


def iso_ms(epoch_ms: int) -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2026-11-25T13:00:31.042Z."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def line(
    *,
    fault_id: str,
    kind: str,
    target: str,
    container: str,
    params: dict[str, Any],
    executor: str,
    call: list[Any],
    start_ms: int,
    end_ms: int,
    outcome: str,
    **extra: Any,
) -> dict[str, Any]:
    record = {
        "fault_id": fault_id,
        "kind": kind,
        "target": target,
        "container": container,
        "params": params,
        "executor": executor,
        "call": call,
        "start": iso_ms(start_ms),
        "end": iso_ms(end_ms),
        "start_ms": start_ms,
        "end_ms": end_ms,
        "outcome": outcome,
    }
    record.update(extra)
    return record


class Timeline:
    def __init__(self, run_dir: Path) -> None:
        self._file = JsonlFile(run_dir / TIMELINE_NAME)
        self.run_dir = run_dir

    def append(self, record: dict[str, Any]) -> None:
        self._file.append(record)

    def written_ids(self) -> set[str]:
        return {str(r.get("fault_id")) for r in read_timeline(self.run_dir)}


def read_timeline(run_dir: Path) -> list[dict[str, Any]]:
    return read_jsonl(run_dir / TIMELINE_NAME)
