"""Docker unit for kill-executor: the executor JVMs of a Spark worker container, signalled by a process
run inside it (Docker exec); the worker itself keeps running and launches new executors."""

from __future__ import annotations

import threading
from typing import Any

from tools.chaos.docker.engine import Engine, require_running
from tools.chaos.kinds.spark import EXECUTOR_PATTERN
from tools.chaos.outcome import FaultFailed
from tools.chaos.plan import Step
from tools.chaos.schedule import Action
from tools.chaos.targets import Target

# Undo op, as written in the journal's intent records (with "container_id"):
#   {"op": "executor-relaunch"}  nothing to revert: the worker launches a new executor; the undo only
#                                checks that the worker container still runs (start it if chaos left
#                                it stopped is not ours to do: the kill never touched it).
FIND = f"grep -l '{EXECUTOR_PATTERN}' /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3"


def kill_script(signal: str) -> str:
    """Signals every executor JVM of the container; exit 3 when there is none."""
    return f'pids=$({FIND}); [ -n "$pids" ] || exit 3; kill -s {signal.removeprefix("SIG")} $pids; echo $pids'


def _exec(engine: Engine, cid: str, script: str) -> tuple[int, str]:
    api = engine.client.api
    exec_id = api.exec_create(cid, ["sh", "-c", script])["Id"]
    out = api.exec_start(exec_id).decode(errors="replace").strip()
    return int(api.exec_inspect(exec_id).get("ExitCode") or 0), out


class SparkUnit:
    kinds = ("kill-executor",)
    undo_ops = ("executor-relaunch",)

    def checks(self, engine: Engine, action: Action, target: Target, fault_id: str) -> list[Step]:
        def check(calls: list[str], stop: threading.Event) -> None:
            require_running(engine, target.container_id, target.name)

        return [Step((), check)]

    def undo_spec(self, engine: Engine, action: Action, target: Target, fault_id: str) -> dict[str, Any]:
        return {"op": "executor-relaunch", "container_id": target.container_id}

    def apply(
        self, engine: Engine, action: Action, target: Target, fault_id: str, spec: dict[str, Any]
    ) -> list[Step]:
        cid, signal = target.container_id, action.fault.params["signal"]
        script = kill_script(signal)
        call = f"POST /containers/{cid[:12]}/exec sh -c {script!r}"

        def do(calls: list[str], _stop: threading.Event) -> None:
            code, out = _exec(engine, cid, script)
            if code == 3:
                calls.append(f"{call}: no executor running")
                raise FaultFailed(f"{target.name} runs no Spark executor (is spark_deploy standalone?)")
            if code != 0:
                calls.append(f"{call}: exit {code}")
                raise FaultFailed(f"{target.name}: signalling the executor failed: {out[-200:]}")
            calls.append(f"{call}: {signal} to pid {out}")

        return [Step((call,), do)]

    def undo(self, engine: Engine, spec: dict[str, Any], fault_id: str) -> list[Step]:
        return []


UNIT = SparkUnit()
