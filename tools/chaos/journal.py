"""The crash-safe intent log, <run>/chaos-journal.jsonl.

An `intent` record (what will be changed and how to undo it) is on disk before the change is made, and
an `undone` record after the change is reverted. Whatever has an intent and no `undone` may still be
applied, so `tools chaos restore` can always find and revert it, even after SIGKILL at any instant.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from tools.run.jsonl import JsonlFile, read_jsonl
from tools.run.layout import JOURNAL_FILE


def now_ms() -> int:
    return int(time.time() * 1000)


class Journal:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._file = JsonlFile(run_dir / JOURNAL_FILE)

    @property
    def path(self) -> Path:
        return self._file.path

    def run_start(self, run_id: str, scenario: str, executor: str) -> None:
        self._file.append(
            {
                "type": "run-start",
                "run_id": run_id,
                "pid": os.getpid(),
                "scenario": scenario,
                "executor": executor,
            }
            | {"ts_ms": now_ms()}
        )

    def intent(self, record: dict[str, Any]) -> None:
        """record: fault_id, kind, target, container_id, container, params, executor, call, start_ms, undo."""
        self._file.append({"type": "intent", **record})

    def pumba(self, fault_id: str, pid: int, argv: list[str]) -> None:
        self._file.append(
            {"type": "pumba", "fault_id": fault_id, "pid": pid, "argv": argv, "ts_ms": now_ms()}
        )

    def applied(self, fault_id: str, calls: list[str]) -> None:
        """The calls the apply made (for the timeline line a restore writes after a crash)."""
        self._file.append({"type": "applied", "fault_id": fault_id, "calls": calls, "ts_ms": now_ms()})

    def undone(self, fault_id: str, outcome: str, end_ms: int) -> None:
        self._file.append({"type": "undone", "fault_id": fault_id, "outcome": outcome, "end_ms": end_ms})

    def run_end(self, exit_code: int) -> None:
        self._file.append({"type": "run-end", "exit_code": exit_code, "ts_ms": now_ms()})


def read_journal(run_dir: Path) -> list[dict[str, Any]]:
    return read_jsonl(run_dir / JOURNAL_FILE)


def open_intents(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Intents without an `undone` record, in the order they were written."""
    closed = {r.get("fault_id") for r in records if r.get("type") == "undone"}
    return [r for r in records if r.get("type") == "intent" and r.get("fault_id") not in closed]


def pumba_processes(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pumba child processes of faults that are still open (they may outlive a SIGKILLed runner)."""
    open_ids = {r["fault_id"] for r in open_intents(records)}
    return [r for r in records if r.get("type") == "pumba" and r.get("fault_id") in open_ids]
