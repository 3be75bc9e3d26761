"""systemd unit for kill-executor: the executor JVMs among the processes of a worker's unit
(chaosbed-spark-worker), signalled one by one over SSH; the unit and its worker keep running."""

from __future__ import annotations

from typing import Any

from tools.chaos.faults import FaultSpec
from tools.chaos.kinds.spark import EXECUTOR_PATTERN
from tools.chaos.plan import Step
from tools.chaos.schedule import Action
from tools.chaos.systemd.host import ssh_step
from tools.chaos.vm_hosts import VmHost

# Undo op (with "host"): {"op": "executor-relaunch-host"}: nothing to revert, the worker relaunches.


def kill_cmd(unit: str, signal: str) -> list[str]:
    """The unit's processes (its cgroup) whose command line is an executor's, signalled; exit 3: none."""
    unit = unit if unit.endswith(".service") else f"{unit}.service"
    script = (
        f"cg=$(systemctl show -p ControlGroup --value {unit}); pids=; "
        f"for p in $(cat /sys/fs/cgroup$cg/cgroup.procs); do "
        f"grep -q '{EXECUTOR_PATTERN}' /proc/$p/cmdline 2>/dev/null && pids=\"$pids $p\"; done; "
        f'[ -n "$pids" ] || exit 3; kill -s {signal.removeprefix("SIG")} $pids'
    )
    return ["sh", "-c", script]


class SparkUnit:
    kinds = ("kill-executor",)
    undo_ops = ("executor-relaunch-host",)

    def refuse(self, fault: FaultSpec, hosts: dict[str, VmHost]) -> str | None:
        return None

    def checks(self, host: VmHost, action: Action, fault_id: str) -> list[Step]:
        return []

    def undo_spec(
        self, host: VmHost, hosts: dict[str, VmHost], action: Action, fault_id: str
    ) -> dict[str, Any]:
        return {"host": host.to_json(), "op": "executor-relaunch-host", "unit": host.unit}

    def apply(self, host: VmHost, action: Action, spec: dict[str, Any]) -> list[Step]:
        return [ssh_step(host, kill_cmd(host.unit, action.fault.params["signal"]))]

    def undo(self, spec: dict[str, Any]) -> list[Step]:
        return []


UNIT = SparkUnit()
