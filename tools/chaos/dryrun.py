"""`run --dry-run`: resolve every target and print the exact calls each fault would make, changing nothing.

A loop over the schedule: each executor's unit plans the fault as steps, and the lines printed here are
the lines of the steps the run would take. Unlike Pumba's dry run it does not sleep through the
durations: the waits are printed instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tools.chaos.schedule import Schedule
from tools.chaos.triggers import TriggerError, is_dynamic


def dry_run(
    executor: Any, schedule: Schedule, run_id: str, resolve: Callable[[str], str] | None = None
) -> list[dict[str, Any]]:
    """`resolve` names a dynamic target's service now (it may be another one when the fault fires)."""
    rows = []
    for action in schedule.actions:
        fault_id = action.fault_id(run_id)
        if action.not_applicable:
            rows.append(
                {
                    "id": action.short_id,
                    "at_ms": action.at_ms,
                    "kind": action.kind,
                    "target": action.service,
                    "call": [f"not-applicable: {action.not_applicable}: nothing is done"],
                }
            )
            continue
        if is_dynamic(action.service):
            rule = action.service
            try:
                if resolve is None:
                    raise TriggerError("no brokers to ask")
                action = replace(action, service=resolve(rule))
            except TriggerError as exc:
                rows.append(
                    {
                        "id": action.short_id,
                        "at_ms": action.at_ms,
                        "kind": action.kind,
                        "target": rule,
                        "call": [f"{rule}: resolved when the fault fires (not now: {exc})"],
                    }
                )
                continue
            target, lines = executor.route(action.service).plan(action, fault_id)
            rows.append(
                {
                    "id": f"{action.number:02d}-{rule}",
                    "at_ms": action.at_ms,
                    "kind": action.kind,
                    "target": f"{target} ({rule} now; resolved again when the fault fires)",
                    "call": lines,
                }
            )
            continue
        target, lines = executor.route(action.service).plan(action, fault_id)
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
