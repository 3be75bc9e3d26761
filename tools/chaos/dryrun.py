"""`run --dry-run`: resolve every target and print the exact calls each fault would make, changing nothing.

A loop over the schedule: each executor's unit plans the fault as steps, and the lines printed here are
the lines of the steps the run would take. Unlike Pumba's dry run it does not sleep through the
durations: the waits are printed instead.
"""

from __future__ import annotations

from typing import Any

from tools.chaos.schedule import Schedule


def dry_run(executor: Any, schedule: Schedule, run_id: str) -> list[dict[str, Any]]:
    rows = []
    for action in schedule.actions:
        target, lines = executor.route(action.service).plan(action, action.fault_id(run_id))
        rows.append(
            {
                "id": action.short_id,
                "at_ms": action.at_ms,
                "kind": action.kind,
                "target": target,
                "call": lines,
            }
        )
    return rows
