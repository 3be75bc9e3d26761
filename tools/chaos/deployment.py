"""Faults that apply on one Spark deployment only (`spark_deploy: standalone` in a scenario entry).

The same scenario file runs on both deployments: on another one such a fault does nothing and is recorded
`not-applicable` with the reason. The injector is told the deployment (`--spark-deploy`, or the run's
run.json, where `tools experiment run` records what the playbook deployed); it never guesses it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.chaos.kinds.params import FaultError
from tools.errors import EXIT_BAD_INPUT, ToolError

if TYPE_CHECKING:  # the schedule's FaultSpec reads its key with read_requirement below
    from tools.chaos.schedule import Schedule

SPARK_DEPLOYS = ("local", "standalone")
KEY = "spark_deploy"


def read_requirement(raw: dict[str, Any]) -> str | None:
    """A scenario entry's `spark_deploy`: the deployment it needs, or None (it applies on every one)."""
    value = raw.get(KEY)
    if value is None:
        return None
    if value not in SPARK_DEPLOYS:
        raise FaultError(f"'{KEY}' must be one of {', '.join(SPARK_DEPLOYS)}, got {value!r}")
    return str(value)


def check_deploy(value: str | None, source: str = "--spark-deploy") -> str | None:
    """The deployment given on the command line (or recorded), checked: bad input is one line, exit 2."""
    if value is None or value == "":
        return None
    if value not in SPARK_DEPLOYS:
        raise ToolError(f"{source} must be one of {', '.join(SPARK_DEPLOYS)}, got {value!r}", EXIT_BAD_INPUT)
    return value


def recorded(run_json: dict[str, Any]) -> str | None:
    """What the run recorded (run.json's topology.spark_deploy), or None."""
    topology = run_json.get("topology")
    value = topology.get(KEY) if isinstance(topology, dict) else None
    return check_deploy(value if isinstance(value, str) else None, f"run.json topology.{KEY}")


def reason(required: str | None, actual: str | None) -> str | None:
    """Why a fault does nothing on this deployment, or None when it applies (or the deployment is unknown)."""
    if required is None or actual is None or required == actual:
        return None
    return f"needs {KEY} {required}; this run's is {actual}"


def gate(schedule: Schedule, actual: str | None) -> Schedule:
    """The schedule with each action marked not applicable (and why) on this deployment."""
    from tools.chaos.schedule import last_end_ms  # the schedule's module imports this one's reader

    actions = tuple(replace(a, not_applicable=reason(a.fault.spark_deploy, actual)) for a in schedule.actions)
    # Not-applicable faults at the end would only be waited for: the phase ends with the last real one.
    phase_ms = schedule.phase_ms if schedule.fixed_phase else last_end_ms(actions)
    return replace(schedule, actions=actions, spark_deploy=actual, phase_ms=phase_ms)


def require_known(schedule: Schedule, path: Path | str) -> None:
    """Running (or dry-running) a scenario with gated faults needs the deployment: refuse, exit 2."""
    if schedule.spark_deploy is not None:
        return
    gated = next((a.fault for a in schedule.actions if a.fault.spark_deploy is not None), None)
    if gated is not None:
        raise ToolError(
            f"{path}: fault #{gated.index} ({gated.name}) applies only with {KEY} {gated.spark_deploy}: "
            f"say which deployment runs (--spark-deploy {'|'.join(SPARK_DEPLOYS)}; `tools experiment run` "
            "records it in run.json)",
            EXIT_BAD_INPUT,
        )
