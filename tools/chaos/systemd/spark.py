"""systemd unit for kill-executor: the executor JVMs among the processes of a worker's unit
(chaosbed-spark-worker), signalled over SSH; the unit and its worker keep running, and the worker launches
a new executor. The unit's processes are those whose cgroup is the unit's (on cgroup v1, v2 or hybrid
hosts alike: /proc/<pid>/cgroup ends with the unit's ControlGroup)."""

from __future__ import annotations

import threading
from typing import Any

from tools.chaos.faults import FaultSpec
from tools.chaos.kinds.spark import EXECUTOR_PATTERN
from tools.chaos.outcome import FaultFailed
from tools.chaos.plan import Step
from tools.chaos.schedule import Action
from tools.chaos.ssh import SshShell
from tools.chaos.systemd.host import ssh_line
from tools.chaos.vm_hosts import VmHost

# Undo op (with "host"): {"op": "executor-relaunch-host"}: nothing to revert, the worker relaunches.
NO_EXECUTOR, NOT_RUNNING = 3, 4

# $1 the unit, $2 the signal: prints the pids signalled; exit 3 when the unit runs no executor, 4 when the
# unit has no cgroup (not running).
KILL = (
    'cg=$(systemctl show -p ControlGroup --value "$1"); [ -n "$cg" ] || exit 4; pids=; '
    f"for c in $(grep -l '{EXECUTOR_PATTERN}' /proc/[0-9]*/cmdline 2>/dev/null); do "
    "p=${c#/proc/}; p=${p%/cmdline}; "
    'while IFS= read -r line; do case "$line" in *"$cg") pids="$pids $p"; break;; esac; '
    'done 2>/dev/null < "/proc/$p/cgroup"; done; '
    '[ -n "$pids" ] || exit 3; kill -s "$2" $pids && echo $pids'
)


def kill_cmd(unit: str, signal: str) -> list[str]:
    unit = unit if unit.endswith(".service") else f"{unit}.service"
    return ["sh", "-c", KILL, "sh", unit, signal.removeprefix("SIG")]


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
        signal = action.fault.params["signal"]
        cmd = kill_cmd(host.unit, signal)

        def do(calls: list[str], _stop: threading.Event) -> None:
            done = SshShell(host, calls).run(cmd, check=False)
            # As the docker executor: a worker without an executor fails the fault (nothing was touched).
            if done.exit_code == NO_EXECUTOR:
                calls.append("no executor running")
                raise FaultFailed(f"{host.service} runs no Spark executor (is spark_deploy standalone?)")
            if done.exit_code == NOT_RUNNING:
                raise FaultFailed(f"{host.service}: unit {host.unit} is not running")
            if done.exit_code != 0:
                why = (done.stderr or done.stdout).strip().splitlines()
                raise FaultFailed(f"{host.service}: signalling the executor failed: {why[-1] if why else ''}")
            calls.append(f"{signal} to pid {done.stdout.strip()}")

        return [Step((ssh_line(host, cmd),), do)]

    def undo(self, spec: dict[str, Any]) -> list[Step]:
        return []


UNIT = SparkUnit()
