"""<run>/timeline.jsonl: one line per fault when it ends. Chaos writes it; the report reads the fault windows.

The outcome vocabulary lives here too: the chaos runner and restore write these words, the report and the
benchmark decide from them whether a fault was applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.errors import ToolError
from tools.recovery import FaultWindow
from tools.run.clock import iso_from_ms, ms_from_iso
from tools.run.jsonl import JsonlFile, read_jsonl
from tools.run.layout import TIMELINE_FILE

OK = "ok"
TARGET_VANISHED = "target-vanished"
UNSUPPORTED = "unsupported"
NOT_APPLICABLE = "not-applicable"  # a fault for another Spark deployment: nothing was done (`detail`: why)
INTERRUPTED = "interrupted"
RESTORED_AFTER_CRASH = "restored-after-crash"
FAILED = "failed"  # written as "failed: <why>"
OUTCOMES = (
    OK,
    TARGET_VANISHED,
    UNSUPPORTED,
    NOT_APPLICABLE,
    f"{FAILED}: <why>",
    INTERRUPTED,
    RESTORED_AFTER_CRASH,
)
# Outcomes of a fault that was applied; "" = not recorded. Others (unsupported, target-vanished,
# failed: ...) mean it may not have been applied, or (failed undo) may have stayed applied: such faults
# are shown but kept out of recovery statistics.
APPLIED_OUTCOMES = frozenset({OK, INTERRUPTED, RESTORED_AFTER_CRASH, ""})
# A call line that records what the target did, not a call (the executors' undo writes them).
OBSERVED = "observed: "


def failed(detail: str) -> str:
    return f"{FAILED}: {detail}"


def is_failure(outcome: str) -> bool:
    return outcome.startswith(FAILED)


# ----------------------------------------------------------------------------------------------- write


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
        "start": iso_from_ms(start_ms),
        "end": iso_from_ms(end_ms),
        "start_ms": start_ms,
        "end_ms": end_ms,
        "outcome": outcome,
    }
    record.update(extra)
    return record


class Timeline:
    """The appender: a line is on disk (fsynced) when append() returns."""

    def __init__(self, run_dir: Path) -> None:
        self._file = JsonlFile(run_dir / TIMELINE_FILE)
        self.run_dir = run_dir

    def append(self, record: dict[str, Any]) -> None:
        self._file.append(record)

    def written_ids(self) -> set[str]:
        return {str(r.get("fault_id")) for r in read_timeline(self.run_dir)}


# ------------------------------------------------------------------------------------------------ read


def read_timeline(run_dir: Path) -> list[dict[str, Any]]:
    """The raw records; a line torn by a crash is skipped."""
    return read_jsonl(run_dir / TIMELINE_FILE)


@dataclass(frozen=True)
class Fault:
    window: FaultWindow
    executor: str
    outcome: str
    params: dict[str, Any] = field(default_factory=dict)
    # What the target did during the fault, as the executor observed it (e.g. `disk fill`: exited, log lines).
    observed: list[str] = field(default_factory=list)
    detail: str = ""  # why, for an outcome that says why not (not-applicable: the deployment it needs)

    @property
    def applied(self) -> bool:
        return self.outcome in APPLIED_OUTCOMES

    @property
    def not_applicable(self) -> bool:
        """Another Spark deployment's fault: nothing was done, so there is nothing to recover from."""
        return self.outcome == NOT_APPLICABLE

    @property
    def shown_outcome(self) -> str:
        """The outcome as the report shows it: a not-applicable fault says why."""
        return f"{self.outcome} ({self.detail})" if self.not_applicable and self.detail else self.outcome


def _ms(record: dict[str, Any], key: str) -> int | None:
    """Epoch ms from `<key>_ms`, else from the ISO `<key>` field; None when absent/null."""
    value = record.get(f"{key}_ms")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    iso = record.get(key)
    return ms_from_iso(iso) if isinstance(iso, str) and iso else None


def read_faults(run_dir: Path) -> tuple[list[Fault], list[str]]:
    """Faults sorted by start, plus notes on lines that were skipped (torn by a crash, no start).

    A missing file is no faults. A line that is not JSON is skipped with a note (the injector may
    have been killed mid-write); so is a record without a start time.
    """
    path = run_dir / TIMELINE_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        raise ToolError(f"unreadable {path}: {exc.strerror}") from None
    faults: list[Fault] = []
    notes: list[str] = []
    for lineno, text_line in enumerate(text.splitlines(), start=1):
        if not text_line.strip():
            continue
        try:
            record = json.loads(text_line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
            start = _ms(record, "start")
            end = _ms(record, "end")
        except ValueError as exc:
            notes.append(f"{TIMELINE_FILE} line {lineno} skipped ({exc})")
            continue
        if start is None:
            notes.append(f"{TIMELINE_FILE} line {lineno} skipped (no start time)")
            continue
        params = record.get("params")
        calls = [*(record.get("call") or []), *(record.get("api_calls") or [])]
        observed = [c.removeprefix(OBSERVED) for c in calls if isinstance(c, str) and c.startswith(OBSERVED)]
        faults.append(
            Fault(
                window=FaultWindow(
                    fault_id=str(record.get("fault_id", f"line-{lineno}")),
                    kind=str(record.get("kind", "unknown")),
                    target=str(record.get("target", "")),
                    start_ms=start,
                    end_ms=end,
                ),
                executor=str(record.get("executor", "")),
                outcome=str(record.get("outcome", "")),
                params=params if isinstance(params, dict) else {},
                observed=observed,
                detail=str(record.get("detail") or ""),
            )
        )
    faults.sort(key=lambda f: (f.window.start_ms, f.window.fault_id))
    return faults, notes
