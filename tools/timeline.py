"""Read the fault windows of a run from `timeline.jsonl` (written by the chaos injector, read-only here)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.errors import ToolError
from tools.recovery import FaultWindow
from tools.rundir import ms_from_iso

TIMELINE_FILE = "timeline.jsonl"
# Outcomes of a fault that was applied (the chaos injector's vocabulary); "" = not recorded. Others
# ("unsupported", "target-vanished", "failed: ...") mean it may not have been applied, or (failed
# undo) may have stayed applied: such faults are shown but kept out of recovery statistics.
APPLIED_OUTCOMES = frozenset({"ok", "interrupted", "restored-after-crash", ""})


@dataclass(frozen=True)
class Fault:
    window: FaultWindow
    executor: str
    outcome: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def applied(self) -> bool:
        return self.outcome in APPLIED_OUTCOMES


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
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
            start = _ms(record, "start")
            end = _ms(record, "end")
        except ValueError as exc:
            notes.append(f"timeline.jsonl line {lineno} skipped ({exc})")
            continue
        if start is None:
            notes.append(f"timeline.jsonl line {lineno} skipped (no start time)")
            continue
        params = record.get("params")
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
            )
        )
    faults.sort(key=lambda f: (f.window.start_ms, f.window.fault_id))
    return faults, notes
