"""systemd unit for the stress kind: stress-ng as a transient unit (`systemd-run`) in the service's slice.

A service's own cgroup cannot hold another unit, so the stress shares what its slice grants: give a
service a slice of its own (Slice=, with CPUQuota=/MemoryMax= on the slice) for the stress to starve it
alone. The transient unit's name comes from the fault id and is journaled before it starts; `--collect`
unloads it once stopped, so after the undo nothing of it is left.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from tools.chaos.faults import FaultSpec
from tools.chaos.outcome import FaultFailed
from tools.chaos.plan import Step
from tools.chaos.schedule import Action
from tools.chaos.ssh import SshShell
from tools.chaos.systemd.host import ssh_line, ssh_step, unit_state
from tools.chaos.vm_hosts import VmHost

# Undo op, as written in the journal's intent records (with "host", the VmHost as JSON):
#   {"op": "stress-unit", "unit": "chaosbed-stress-<fault>.service", "slice": "system.slice"}
#   stop the transient unit if it is loaded, clear a failed state
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def stress_unit_name(fault_id: str) -> str:
    return f"chaosbed-stress-{_UNSAFE.sub('-', fault_id)}.service"


def run_cmd(unit: str, slice_: str, args: list[str]) -> list[str]:
    return ["systemd-run", f"--unit={unit}", f"--slice={slice_}", "--collect", "--quiet", "stress-ng", *args]


def stray_stress_units(shell: SshShell) -> list[str]:
    """Every chaosbed stress unit loaded on the host (for `restore --all` when no run is active)."""
    listing = shell.run(
        ["systemctl", "list-units", "--all", "--plain", "--no-legend", "chaosbed-stress-*"], check=False
    )
    return [line.split()[0] for line in listing.stdout.splitlines() if line.strip()]


def _checks(host: VmHost) -> None:
    found = SshShell(host, []).run(["sh", "-c", "command -v stress-ng"], check=False)
    if found.exit_code != 0:
        raise FaultFailed(f"no stress-ng on {host.ssh_host} (install the Debian package stress-ng)")


class StressUnit:
    kinds = ("stress",)
    undo_ops = ("stress-unit",)

    def refuse(self, fault: FaultSpec, hosts: dict[str, VmHost]) -> str | None:
        return None

    def checks(self, host: VmHost, action: Action, fault_id: str) -> list[Step]:
        return [Step((), lambda calls, stop: _checks(host))]

    def undo_spec(
        self, host: VmHost, hosts: dict[str, VmHost], action: Action, fault_id: str
    ) -> dict[str, Any]:
        shown = SshShell(host, []).run(["systemctl", "show", "--property=Slice", "--value", host.unit])
        slice_ = shown.stdout.strip() or "system.slice"
        return {"host": host.to_json(), "op": "stress-unit", "unit": stress_unit_name(fault_id)} | {
            "slice": slice_
        }

    def apply(self, host: VmHost, action: Action, spec: dict[str, Any]) -> list[Step]:
        return [ssh_step(host, run_cmd(spec["unit"], spec["slice"], list(action.fault.params["args"])))]

    def undo(self, spec: dict[str, Any]) -> list[Step]:
        host, unit = VmHost.from_json(spec["host"]), spec["unit"]
        stop, reset = ["systemctl", "stop", unit], ["systemctl", "reset-failed", unit]

        def do(calls: list[str], _stop: threading.Event) -> None:
            shell = SshShell(host, calls)
            if unit_state(shell, unit).get("LoadState") in ("not-found", None):
                calls.append(f"skip: {unit} is not loaded (never started, or gone already)")
                return
            shell.run(stop)
            if unit_state(shell, unit).get("LoadState") not in ("not-found", None):
                shell.run(reset, check=False)

        return [Step((ssh_line(host, stop, "if loaded"), ssh_line(host, reset, "if still loaded")), do)]


UNIT = StressUnit()
