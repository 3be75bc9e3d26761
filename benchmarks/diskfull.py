"""The diskfull section of `make bench`: recovery after a full disk of one broker (issue 22).

A `disk fill` with `free: 0` on a broker's capped log dir for --diskfull-seconds (60 by default), repeated
--diskfull-repeats times round robin over the brokers, one at a time, in one experiment at
--recovery-rate (bench.bench_recovery: the report's recovery definition). The broker takes its only log
dir offline and stops; the fault's undo frees the space and starts it. Reported per injection: recovery
from the fault's start and after the space returned, what the broker did (the undo's `observed:` lines),
and whether validation found anything acknowledged missing or duplicated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import recovery_plan
from tools.chaos.durations import format_duration
from tools.run.timeline import read_faults

KIND = "disk fill"


def scenario(seconds: float, repeats: int, gap_s: float = 45) -> dict[str, Any]:
    fill = {"kind": KIND, "target": "kafka-1", "duration": format_duration(int(seconds * 1000)), "free": 0}
    source = {"name": "bench-diskfull", "recovery_gap": "20s", "faults": [fill]}
    plan = recovery_plan.recovery_scenario(source, repeats, gap_s)
    plan["name"] = "bench-diskfull"
    plan["description"] = f"a broker's log dir full for {seconds:g} s, {repeats} times, one broker at a time"
    return plan


def observed(run_dir: Path) -> dict[str, list[str]]:
    """What each filled broker did, by fault id (the undo's `observed:` lines in the timeline)."""
    faults, _ = read_faults(run_dir)
    return {f.window.fault_id: f.observed for f in faults if f.window.kind == KIND}


def stopped(lines: list[str]) -> bool:
    return any(" exited " in line for line in lines if not line.startswith("log: "))


def table_rows(res: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    seen = res.get("observed") or {}
    halted = sum(stopped(lines) for lines in seen.values())
    lost = (res.get("missing") or 0) + (res.get("duplicate") or 0)
    return [
        (
            f"disk full: broker log dir full {res.get('seconds', 60):g} s ({len(seen)} injections)",
            f"broker stopped in {halted} of {len(seen)}; missing {res.get('missing')}, "
            f"duplicate {res.get('duplicate')} after validation",
            "nothing acknowledged lost",
            "yes" if lost == 0 else "**no**",
        )
    ]
