"""A systemd host reached over SSH: the unit's state, the runtime drop-in that holds a fault, signals,
and every command as a step whose dry-run line is the ssh command line it runs."""

from __future__ import annotations

import ipaddress
import socket
import threading

from tools.chaos import netfilter
from tools.chaos.outcome import FaultFailed
from tools.chaos.plan import Step
from tools.chaos.ssh import DEFAULT_TIMEOUT_S, SshShell, remote_command
from tools.chaos.vm_hosts import VmHost

DROPIN_NAME = "zz-chaosbed.conf"
DROPIN_ROOT = "/run/systemd/system"


def dropin_path(unit: str) -> str:
    return f"{DROPIN_ROOT}/{unit}.d/{DROPIN_NAME}"


def dropin_text(stop_timeout_s: int | None) -> str:
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


def ssh_line(host: VmHost, cmd: list[str], when: str = "") -> str:
    """A command as SshShell records it (and the dry run prints it); `when` notes a condition."""
    line = f"ssh {host.ssh_user}@{host.ssh_host}:{host.ssh_port} {remote_command(host, cmd)}"
    return f"{line} ({when})" if when else line


def ssh_step(host: VmHost, cmd: list[str], timeout_s: int = DEFAULT_TIMEOUT_S) -> Step:
    def do(calls: list[str], _stop: threading.Event) -> None:
        SshShell(host, calls).run(cmd, timeout_s=timeout_s)

    return Step((ssh_line(host, cmd),), do)
