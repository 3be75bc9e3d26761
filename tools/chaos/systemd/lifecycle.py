"""systemd unit for kill, stop, pause and restart on a host's unit (rm has no counterpart: refused).

| kind    | on the host                                                                                  |
|---------|----------------------------------------------------------------------------------------------|
| kill    | `systemctl kill --signal=S` (SIGKILL: every process of the unit, like a container's death;   |
|         | other signals: the main process, like `docker kill`)                                         |
| stop    | `systemctl stop` with `TimeoutStopSec=<time>`: the unit's stop signal, `time` seconds, then  |
|         | SIGKILL (Pumba's stop)                                                                        |
| pause   | SIGSTOP to every process of the unit, SIGCONT on undo                                        |
| restart | `systemctl restart` with `TimeoutStopSec=<timeout>`                                          |

While a fault holds, a runtime drop-in (`/run/systemd/system/<unit>.d/zz-chaosbed.conf`, gone on reboot)
sets `Restart=no`, so the unit's own restart policy cannot end the fault early. The undo removes the
drop-in, sends SIGCONT, clears a failed state and starts the unit if it is not active.
"""

from __future__ import annotations

import threading
from typing import Any

from tools.chaos.faults import FaultSpec
from tools.chaos.outcome import TargetVanished
from tools.chaos.plan import Step
from tools.chaos.schedule import Action
from tools.chaos.ssh import DEFAULT_TIMEOUT_S, SshShell
from tools.chaos.systemd.host import (
    dropin_path,
    dropin_text,
    remove_dropin_cmd,
    signal_cmd,
    ssh_line,
    ssh_step,
    unit_state,
    write_dropin_cmd,
)
from tools.chaos.vm_hosts import VmHost

# Undo op, as written in the journal's intent records (with "host", the VmHost as JSON):
#   {"op": "unit", "unit": "kafka.service", "dropin": path | ""}
#   SIGCONT, drop the drop-in, start the unit if it is not active
START_TIMEOUT_S = 180


def lifecycle_cmds(kind: str, params: dict[str, Any], unit: str) -> list[tuple[list[str], int]]:
    """The command lines (and their timeouts) that apply a lifecycle fault."""
    if kind == "pause":
        return [(signal_cmd(unit, "SIGSTOP", "all"), DEFAULT_TIMEOUT_S)]
    if kind == "kill":
        whom = "all" if params["signal"] == "SIGKILL" else "main"
        return [
            (write_dropin_cmd(unit, dropin_text(None)), DEFAULT_TIMEOUT_S),
            (signal_cmd(unit, params["signal"], whom), DEFAULT_TIMEOUT_S),
        ]
    grace = params["time"] if kind == "stop" else params["timeout_s"]
    return [
        (write_dropin_cmd(unit, dropin_text(grace)), DEFAULT_TIMEOUT_S),
        (["systemctl", kind, unit], 2 * grace + START_TIMEOUT_S),
    ]


def undo_unit(host: VmHost, unit: str) -> Step:
    """Revert whatever a lifecycle fault left; each command checks the live state, so it repeats safely."""
    sigcont, start = signal_cmd(unit, "SIGCONT", "all"), ["systemctl", "start", unit]
    reset = ["systemctl", "reset-failed", unit]  # also clears start rate limiting

    def do(calls: list[str], _stop: threading.Event) -> None:
        shell = SshShell(host, calls)
        state = unit_state(shell, unit)
        if state.get("LoadState") == "not-found":
            raise TargetVanished(f"unit {unit} no longer exists on {host.ssh_host}")
        if state.get("ActiveState") in ("active", "reloading", "deactivating"):
            # Never leave a process stopped, whoever sent SIGSTOP during the fault.
            shell.run(sigcont, check=False)
        shell.run(remove_dropin_cmd(unit))
        if unit_state(shell, unit).get("ActiveState") != "active":
            shell.run(reset, check=False)
            shell.run(start, timeout_s=START_TIMEOUT_S)

    shows = (
        ssh_line(host, sigcont, "if active"),
        ssh_line(host, remove_dropin_cmd(unit)),
        ssh_line(host, reset, "if not active"),
        ssh_line(host, start, "if not active"),
    )
    return Step(shows, do)


class LifecycleUnit:
    kinds = ("kill", "stop", "pause", "restart", "rm")
    undo_ops = ("unit",)

    def refuse(self, fault: FaultSpec, hosts: dict[str, VmHost]) -> str | None:
        on_vms = [t for t in fault.targets if t in hosts]
        if on_vms and fault.kind == "rm":
            return f"rm has no systemd counterpart (target {on_vms[0]})"
        return None

    def checks(self, host: VmHost, action: Action, fault_id: str) -> list[Step]:
        return []

    def undo_spec(
        self, host: VmHost, hosts: dict[str, VmHost], action: Action, fault_id: str
    ) -> dict[str, Any]:
        dropin = dropin_path(host.unit) if action.kind != "pause" else ""
        return {"host": host.to_json(), "op": "unit", "unit": host.unit, "dropin": dropin}

    def apply(self, host: VmHost, action: Action, spec: dict[str, Any]) -> list[Step]:
        cmds = lifecycle_cmds(action.kind, action.fault.params, host.unit)
        return [ssh_step(host, cmd, timeout_s) for cmd, timeout_s in cmds]

    def undo(self, spec: dict[str, Any]) -> list[Step]:
        return [undo_unit(VmHost.from_json(spec["host"]), spec["unit"])]


UNIT = LifecycleUnit()
