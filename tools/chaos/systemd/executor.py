"""The systemd executor: a loop over its units (tools/chaos/systemd/<family>.py); it knows no kind.

Everything an undo needs (host, unit, drop-in, rules) is journaled before the change, so a restore after
SIGKILL works without the hosts file.
"""

from __future__ import annotations

import threading
from typing import Any

from tools.chaos.config import RULE_COMMENT_PREFIX
from tools.chaos.docker.disk import ballast_name
from tools.chaos.faults import FaultSpec
from tools.chaos.outcome import FaultFailed, FaultOutcome
from tools.chaos.plan import FaultPlan, dry_run_lines, run_steps
from tools.chaos.rules import sweep_rules
from tools.chaos.schedule import Action
from tools.chaos.ssh import SshShell
from tools.chaos.systemd import unit_for
from tools.chaos.systemd.disk import sweep_ballasts
from tools.chaos.systemd.host import DROPIN_NAME, DROPIN_ROOT, unit_state
from tools.chaos.systemd.lifecycle import undo_unit
from tools.chaos.systemd.stress import stray_stress_units
from tools.chaos.targets import Target
from tools.chaos.vm_hosts import VmHost
from tools.errors import EXIT_BAD_INPUT, ToolError


class SystemdExecutor:
    name = "systemd"

    def __init__(self, hosts: dict[str, VmHost]) -> None:
        self.hosts = hosts

    def route(self, service: str) -> SystemdExecutor:
        return self

    def find(self, service: str) -> Target | None:
        host = self.hosts[service]
        state = unit_state(SshShell(host, []), host.unit)
        if state.get("LoadState") == "not-found":
            return None
        return Target(service, f"{host.ssh_host}/{host.unit}", host.label, state.get("ActiveState", ""))

    def prepare(self, action: Action, target: Target, fault_id: str) -> dict[str, Any]:
        if target.status != "active":
            raise FaultFailed(f"{target.name} is {target.status}, not active")
        host, unit = self.hosts[action.service], unit_for(action.kind)
        run_steps(unit.checks(host, action, fault_id), [])
        return unit.undo_spec(host, self.hosts, action, fault_id)

    def hold_ms(self, action: Action) -> int | None:
        return action.fault.hold_ms

    def call(self, fault_id: str) -> list[str] | None:
        return None  # the record is the list of ssh command lines it ran

    def apply(
        self,
        action: Action,
        target: Target,
        fault_id: str,
        undo: dict[str, Any],
        calls: list[str],
        stop: threading.Event,
    ) -> None:
        host = self.hosts[action.service]
        run_steps(unit_for(action.kind).apply(host, action, undo), calls, stop)

    def plan(self, action: Action, fault_id: str) -> tuple[str, list[str]]:
        """`run --dry-run`: the unit's label and the lines of every step the run would take."""
        host, unit = self.hosts[action.service], unit_for(action.kind)
        checks = unit.checks(host, action, fault_id)
        shown = [line for step in checks for line in step.shows]
        try:
            spec = unit.undo_spec(host, self.hosts, action, fault_id)
        except FaultOutcome as exc:
            return host.label, shown if shown else [f"refused: {exc.detail}"]
        plan = FaultPlan(checks, unit.apply(host, action, spec), unit.undo(spec))
        return host.label, dry_run_lines(plan, self.hold_ms(action))


def check_vm_schedule(faults: list[FaultSpec], hosts: dict[str, VmHost], path: object) -> None:
    """Before anything is touched: each kind's unit says what these hosts cannot take."""
    for fault in faults:
        problem = unit_for(fault.kind).refuse(fault, hosts)
        if problem:
            raise ToolError(f"{path}: fault #{fault.index} ({fault.name}): {problem}", EXIT_BAD_INPUT)


def check_units(hosts: dict[str, VmHost], services: set[str]) -> None:
    """Each unit a scenario targets must exist on its host, and the host must answer over SSH."""
    for service in sorted(services & set(hosts)):
        host = hosts[service]
        try:
            state = unit_state(SshShell(host, []), host.unit)
        except FaultFailed as exc:
            raise ToolError(f"target {service}: {exc.detail}", EXIT_BAD_INPUT) from None
        if state.get("LoadState") == "not-found":
            raise ToolError(f"target {service}: no unit {host.unit} on {host.ssh_host}", EXIT_BAD_INPUT)


def sweep_host(host: VmHost, keep_prefixes: tuple[str, ...], units: tuple[str, ...] = ()) -> list[str]:
    """`restore --all` on a systemd host: stray chaosbed rules and disk-fill ballasts, except those of runs
    still active (`keep_prefixes`: their rules' comment prefixes), and drop-ins when no run is active.
    `units`: the host's units in the hosts file (default: host.unit), started if a full disk failed one."""
    shell = SshShell(host, [])
    swept = [f"{host.ssh_host}: {comment}" for comment in sweep_rules(shell, keep_prefixes)]
    keep = tuple(ballast_name(p.removeprefix(RULE_COMMENT_PREFIX)) for p in keep_prefixes)
    swept += [f"{host.ssh_host}: {done}" for done in sweep_ballasts(shell, keep, units or (host.unit,))]
    if not keep_prefixes:
        listing = shell.run(["sh", "-c", f"ls {DROPIN_ROOT}/*.d/{DROPIN_NAME} 2>/dev/null || true"]).stdout
        for path in listing.split():
            unit = path.removeprefix(f"{DROPIN_ROOT}/").split(".d/", 1)[0]
            run_steps([undo_unit(host, unit)], [])
            swept.append(f"{host.ssh_host}: drop-in of {unit}")
        for unit in stray_stress_units(shell):
            shell.run(["systemctl", "stop", unit], check=False)
            swept.append(f"{host.ssh_host}: stress unit {unit}")
    return swept
