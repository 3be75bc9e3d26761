"""Run one command line on a systemd host over OpenSSH: the VM target's counterpart of a sidecar.

`SshShell(host, calls).run(cmd)` has the sidecar's interface (an ExecResult; FaultFailed on a non-zero
exit when checked), so iptables rules go in and come out through the same code on both targets. The
remote side gets the argv shell-quoted, behind `sudo -n` when the host says `become`. ssh never prompts
(BatchMode) and gives up on a dead host within seconds, so a restore cannot hang on one.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time

from tools.chaos.outcome import FaultFailed
from tools.chaos.sidecar import HOLD_ENV, ExecResult
from tools.chaos.vm_hosts import VmHost

SSH_CONNECTION_ERROR = 255
DEFAULT_TIMEOUT_S = 60


def ssh_argv(host: VmHost) -> list[str]:
    """`ssh ... user@host` without the remote command."""
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
    argv += ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=2"]
    argv += ["-o", "StrictHostKeyChecking=accept-new", "-o", "LogLevel=ERROR"]
    if host.known_hosts:
        argv += ["-o", f"UserKnownHostsFile={host.known_hosts}"]
    if host.ssh_key:
        argv += ["-i", host.ssh_key, "-o", "IdentitiesOnly=yes"]
    return [*argv, "-p", str(host.ssh_port), "-l", host.ssh_user, host.ssh_host]


def remote_command(host: VmHost, cmd: list[str]) -> str:
    return shlex.join(["sudo", "-n", *cmd] if host.become else cmd)


class SshShell:
    def __init__(self, host: VmHost, calls: list[str]) -> None:
        self.host = host
        self.calls = calls

    def run(self, cmd: list[str], check: bool = True, timeout_s: int = DEFAULT_TIMEOUT_S) -> ExecResult:
        hold_ms = int(os.environ.get(HOLD_ENV, "0") or 0)
        if hold_ms:  # test hook, as in the sidecar: lets a crash test land between two commands
            time.sleep(hold_ms / 1000)
        where = f"{self.host.ssh_user}@{self.host.ssh_host}:{self.host.ssh_port}"
        self.calls.append(f"ssh {where} {remote_command(self.host, cmd)}")
        try:
            done = subprocess.run(
                [*ssh_argv(self.host), remote_command(self.host, cmd)],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except FileNotFoundError:
            raise FaultFailed("no `ssh` client on this host (Debian: openssh-client)") from None
        except subprocess.TimeoutExpired:
            raise FaultFailed(f"ssh {where}: `{' '.join(cmd)}` did not finish within {timeout_s}s") from None
        result = ExecResult(done.returncode, done.stdout, done.stderr)
        if done.returncode == SSH_CONNECTION_ERROR:
            why = done.stderr.strip().splitlines()
            raise FaultFailed(f"ssh {where}: {why[-1] if why else 'connection failed'}")
        if check and done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()
            said = why[0] if why else "no output"
            raise FaultFailed(f"{where}: {' '.join(cmd)} exited {done.returncode}: {said}")
        return result
