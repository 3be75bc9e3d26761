"""Apply faults to systemd units on VMs over SSH, with the same vocabulary and restore guarantees.

| kind               | on the host                                                                  |
|--------------------|------------------------------------------------------------------------------|
| kill               | `systemctl kill --signal=S` (SIGKILL: every process of the unit, like a       |
|                    | container's death; other signals: the main process, like `docker kill`)       |
| stop               | `systemctl stop` with `TimeoutStopSec=<time>`: the unit's stop signal, `time` |
|                    | seconds, then SIGKILL (Pumba's stop)                                          |
| pause              | SIGSTOP to every process of the unit, SIGCONT on undo                         |
| restart            | `systemctl restart` with `TimeoutStopSec=<timeout>`                           |
| iptables loss,     | the same tagged rules as in a container, in the host's INPUT chain, plus an  |
| iptables partition | ACCEPT for the SSH port above them so the fault can always be undone          |
| rm                 | refused before anything runs (a unit has no counterpart of removal)           |
| netem              | recorded `unsupported` (not implemented for hosts), like a kernel without it  |

While a lifecycle fault holds, a runtime drop-in (`/run/systemd/system/<unit>.d/zz-chaosbed.conf`, gone
on reboot) sets `Restart=no`, so the unit's own restart policy cannot end the fault early. The undo removes
the drop-in, sends SIGCONT, clears a failed state and starts the unit if it is not active. Everything the
undo needs (host, unit, drop-in, rules) is journaled before the change, so a restore after SIGKILL works
without the hosts file.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any

from tools.chaos import netfilter
from tools.chaos.config import ChaosConfig, rule_comment
from tools.chaos.docker_executor import hold_ms
from tools.chaos.durations import format_duration
from tools.chaos.faults import NETEM_KINDS
from tools.chaos.outcome import FaultFailed, TargetVanished, Unsupported
from tools.chaos.rules import insert_rules, remove_rules, sweep_rules
from tools.chaos.schedule import Action
from tools.chaos.ssh import DEFAULT_TIMEOUT_S, SshShell, remote_command
from tools.chaos.targets import Target
from tools.chaos.vm_hosts import VmHost
from tools.errors import EXIT_BAD_INPUT, ToolError

DROPIN_NAME = "zz-chaosbed.conf"
DROPIN_ROOT = "/run/systemd/system"


def dropin_path(unit: str) -> str:
    return f"{DROPIN_ROOT}/{unit}.d/{DROPIN_NAME}"


def _dropin_text(stop_timeout_s: int | None) -> str:
    lines = ["# chaosbed: a fault holds this unit; removed by its undo (or at reboot)", "[Service]"]
    lines.append("Restart=no")
    if stop_timeout_s is not None:
        lines.append(f"TimeoutStopSec={stop_timeout_s}")
    return "\n".join(lines) + "\n"


def write_dropin_cmd(unit: str, text: str) -> list[str]:
    script = 'mkdir -p "${1%/*}" && printf "%s" "$2" > "$1" && systemctl daemon-reload'
    return ["sh", "-c", script, "sh", dropin_path(unit), text]


def remove_dropin_cmd(unit: str) -> list[str]:
    script = 'if [ -e "$1" ]; then rm -f "$1" && systemctl daemon-reload; fi'
    return ["sh", "-c", script, "sh", dropin_path(unit)]


def unit_state(shell: SshShell, unit: str) -> dict[str, str]:
    out = shell.run(["systemctl", "show", "--property=LoadState,ActiveState,SubState", unit]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def signal_cmd(unit: str, signal: str, whom: str) -> list[str]:
    return ["systemctl", "kill", f"--signal={signal}", f"--kill-whom={whom}", unit]


def ssh_exemption(host: VmHost, comment: str) -> netfilter.Rule:
    """Keeps the control host's SSH to the host open whatever the fault drops."""
    tag = ["-m", "comment", "--comment", comment]
    return ["INPUT", "-p", "tcp", "--dport", str(host.ssh_port), *tag, "-j", "ACCEPT"]


def resolve_ipv4(address: str) -> str:
    """An address as given, or a host name resolved once on the control host."""
    try:
        return str(ipaddress.IPv4Address(address))
    except ValueError:
        pass
    try:
        return socket.gethostbyname(address)
    except OSError as exc:
        raise FaultFailed(f"cannot resolve {address!r}: {exc}") from None


def undo_on_host(spec: dict[str, Any], calls: list[str]) -> None:
    """Revert one journaled fault on a systemd host; each step checks the live state, so it repeats safely."""
    host = VmHost.from_json(spec["host"])
    shell = SshShell(host, calls)
    if spec["op"] == "host-iptables":
        remove_rules(shell, spec["rules"], spec.get("comment"))
        return
    unit = spec["unit"]
    state = unit_state(shell, unit)
    if state.get("LoadState") == "not-found":
        raise TargetVanished(f"unit {unit} no longer exists on {host.ssh_host}")
    if state.get("ActiveState") in ("active", "reloading", "deactivating"):
        # Never leave a process stopped, whoever sent SIGSTOP during the fault.
        shell.run(signal_cmd(unit, "SIGCONT", "all"), check=False)
    shell.run(remove_dropin_cmd(unit))
    if unit_state(shell, unit).get("ActiveState") != "active":
        shell.run(["systemctl", "reset-failed", unit], check=False)  # also clears start rate limiting
        shell.run(["systemctl", "start", unit], timeout_s=180)


class SystemdExecutor:
    name = "systemd"

    def __init__(self, cfg: ChaosConfig, hosts: dict[str, VmHost]) -> None:
        self.cfg = cfg
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
        host = self.hosts[action.service]
        kind, params = action.kind, action.fault.params
        if target.status != "active":
            raise FaultFailed(f"{target.name} is {target.status}, not active")
        if kind in NETEM_KINDS:
            # Recorded, as on a kernel without sch_netem, so one scenario file serves both targets.
            raise Unsupported(f"{kind}: netem on systemd hosts is not implemented by chaosbed")
        base = {"host": host.to_json()}
        if kind in ("kill", "stop", "pause", "restart"):
            dropin = dropin_path(host.unit) if kind != "pause" else ""
            return base | {"op": "unit", "unit": host.unit, "dropin": dropin}
        comment = rule_comment(fault_id)
        interface = host.interface or params["interface"]
        self._check_interface(host, interface)
        if kind == "iptables loss":
            rules = netfilter.loss_rules(params | {"interface": interface}, comment)
            spec = base | {"op": "host-iptables", "comment": comment}
        else:
            ips = [resolve_ipv4(self.hosts[peer].address) for peer in params["peers"]]
            rules = netfilter.partition_rules(interface, ips, comment)
            spec = base | {"op": "host-iptables", "comment": comment, "peer_ips": ips}
        # The exemption first: inserted in order, it is on top before any DROP goes in below it.
        return spec | {"rules": [ssh_exemption(host, comment), *rules]}

    def _check_interface(self, host: VmHost, interface: str) -> None:
        # iptables accepts a rule for an interface that does not exist, and it then drops nothing.
        result = SshShell(host, []).run(["ip", "-o", "link", "show", "dev", interface], check=False)
        if result.exit_code != 0:
            raise FaultFailed(
                f"{host.ssh_host} has no interface {interface} (set `interface:` for it in the hosts file)"
            )

    def hold_ms(self, action: Action) -> int | None:
        return hold_ms(action)

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
        shell = SshShell(host, calls)
        kind, params, unit = action.kind, action.fault.params, host.unit
        if undo["op"] == "host-iptables":
            insert_rules(shell, undo["rules"], in_order=True)
        else:
            for cmd, timeout_s in lifecycle_cmds(kind, params, unit):
                shell.run(cmd, timeout_s=timeout_s)


def lifecycle_cmds(kind: str, params: dict[str, Any], unit: str) -> list[tuple[list[str], int]]:
    """The command lines (and their timeouts) that apply a lifecycle fault; the dry run prints them."""
    if kind == "pause":
        return [(signal_cmd(unit, "SIGSTOP", "all"), DEFAULT_TIMEOUT_S)]
    if kind == "kill":
        whom = "all" if params["signal"] == "SIGKILL" else "main"
        return [
            (write_dropin_cmd(unit, _dropin_text(None)), DEFAULT_TIMEOUT_S),
            (signal_cmd(unit, params["signal"], whom), DEFAULT_TIMEOUT_S),
        ]
    grace = params["time"] if kind == "stop" else params["timeout_s"]
    return [
        (write_dropin_cmd(unit, _dropin_text(grace)), DEFAULT_TIMEOUT_S),
        (["systemctl", kind, unit], 2 * grace + 180),
    ]


def planned_calls(action: Action, host: VmHost, fault_id: str, peer_addresses: list[str]) -> list[str]:
    """`run --dry-run`: the command lines a fault would run on its host, the waits in between."""
    kind, params, unit = action.kind, action.fault.params, host.unit
    hold = hold_ms(action)
    wait = f"wait {format_duration(hold)}" if hold is not None else "hold until the end of the chaos phase"
    where = f"ssh {host.ssh_user}@{host.ssh_host}:{host.ssh_port}"

    def on_host(cmd: list[str]) -> str:
        return f"{where} {remote_command(host, cmd)}"

    if kind in ("kill", "stop", "restart", "pause"):
        applied = [on_host(cmd) for cmd, _ in lifecycle_cmds(kind, params, unit)]
        if kind == "pause":
            return [*applied, wait, on_host(signal_cmd(unit, "SIGCONT", "all"))]
        undo = [on_host(remove_dropin_cmd(unit)), on_host(["systemctl", "start", unit]) + " (if not active)"]
        return [*applied, wait, *undo]
    comment = rule_comment(fault_id)
    interface = host.interface or params["interface"]
    if kind == "iptables loss":
        rules = netfilter.loss_rules(params | {"interface": interface}, comment)
    else:
        rules = netfilter.partition_rules(interface, peer_addresses, comment)
    rules.insert(0, ssh_exemption(host, comment))
    return [
        *[on_host(netfilter.insert_cmd(r, i)) for i, r in enumerate(rules, start=1)],
        wait,
        *[on_host(netfilter.delete_cmd(r)) for r in [*rules[1:], rules[0]]],
    ]


def check_vm_schedule(faults: list[Any], hosts: dict[str, VmHost], path: object) -> None:
    """Before anything is touched: kinds a unit can take, partitions within the VMs, units that exist."""
    for fault in faults:
        where = f"{path}: fault #{fault.index} ({fault.name})"
        on_vms = [t for t in fault.targets if t in hosts]
        if on_vms and fault.kind == "rm":
            raise ToolError(f"{where}: rm has no systemd counterpart (target {on_vms[0]})", EXIT_BAD_INPUT)
        if fault.kind == "iptables partition":
            for target in fault.targets:
                strangers = [p for p in fault.params["peers"] if (p in hosts) != (target in hosts)]
                if strangers:
                    raise ToolError(
                        f"{where}: {target} and its peer {strangers[0]} must both be systemd hosts or both "
                        "containers (a partition cuts addresses within one network)",
                        EXIT_BAD_INPUT,
                    )


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


def sweep_host(host: VmHost, keep_prefixes: tuple[str, ...]) -> list[str]:
    """`restore --all` on a systemd host: stray chaosbed rules, and drop-ins of runs no longer active."""
    shell = SshShell(host, [])
    swept = [f"{host.ssh_host}: {comment}" for comment in sweep_rules(shell, keep_prefixes)]
    if not keep_prefixes:
        listing = shell.run(["sh", "-c", f"ls {DROPIN_ROOT}/*.d/{DROPIN_NAME} 2>/dev/null || true"]).stdout
        for path in listing.split():
            unit = path.removeprefix(f"{DROPIN_ROOT}/").split(".d/", 1)[0]
            undo_on_host({"op": "unit", "host": host.to_json(), "unit": unit, "dropin": path}, [])
            swept.append(f"{host.ssh_host}: drop-in of {unit}")
    return swept
