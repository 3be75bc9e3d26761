"""A fault as steps: what a dry run prints and the code that does it, side by side in one object.

Every executor's unit turns a fault into steps (checks before the intent is journaled, the apply, the
undo); `run --dry-run` prints their lines, the runner runs them, so the two cannot drift apart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tools.chaos.durations import format_duration

# do(calls, stop): make the change, appending what was called to `calls` (the timeline's record)
StepFn = Callable[[list[str], threading.Event], None]


@dataclass(frozen=True)
class Step:
    shows: tuple[str, ...]  # what the dry run prints for it; () for a read-only check it does not show
    do: StepFn


@dataclass(frozen=True)
class FaultPlan:
    checks: Sequence[Step] = ()  # before the intent is journaled: read-only (or a throwaway probe)
    apply: Sequence[Step] = ()
    undo: Sequence[Step] = ()


def run_steps(steps: Sequence[Step], calls: list[str], stop: threading.Event | None = None) -> None:
    for step in steps:
        step.do(calls, stop or threading.Event())


def wait_line(hold_ms: int | None) -> str:
    return (
        f"wait {format_duration(hold_ms)}" if hold_ms is not None else "hold until the end of the chaos phase"
    )


def dry_run_lines(plan: FaultPlan, hold_ms: int | None) -> list[str]:
    """Checks, apply, the wait, undo: each step's lines in the order the runner runs them."""
    lines = [line for step in [*plan.checks, *plan.apply] for line in step.shows]
    if plan.undo:
        lines.append(wait_line(hold_ms))
        lines += [line for step in plan.undo for line in step.shows]
    return lines
