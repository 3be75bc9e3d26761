"""systemd unit for `disk fill`: the same ballast as on Docker, written over SSH into a directory of the
VM (the fault's `volume`: the service's data directory on the host, e.g. /var/lib/kafka/data).

The undo records the unit's state and its journal's telling lines, removes the ballast and starts the
unit again if the full disk stopped it.
"""

from __future__ import annotations

import threading
from typing import Any

from tools.chaos.docker.disk import ballast_name
from tools.chaos.faults import FaultSpec
from tools.chaos.kinds.disk import format_size
from tools.chaos.plan import Step
from tools.chaos.schedule import Action
from tools.chaos.ssh import SshShell
from tools.chaos.systemd.host import ssh_line, unit_state
from tools.chaos.systemd.lifecycle import START_TIMEOUT_S
from tools.chaos.vm_hosts import VmHost
from tools.run.timeline import OBSERVED

# Undo op, as written in the journal's intent records (with "host", the VmHost as JSON):
#   {"op": "disk-fill-host", "unit": u, "dir": d, "ballast": path, "since": epoch s}
#   record the unit's state and journal lines since `since`, rm -f the ballast, start the unit if stopped

# Refuse the root filesystem, then fallocate until `keep` bytes are free (halving what is asked when
# the file's own extent blocks do not fit); prints free blocks, block size and blocks at the end.
FILL = (
    'd=$1; f=$2; keep=$3; i=0; [ "$(stat -c %d "$d")" != "$(stat -c %d /)" ] '
    '|| { echo "$d is on the host root filesystem: filling it would fill the host disk" >&2; exit 1; }; '
    'bs=$(stat -f -c %S "$d"); [ $(( $(stat -f -c %b "$d") * bs )) -gt "$keep" ] '
    '|| { echo "free $keep B is not less than the volume at $d" >&2; exit 1; }; : > "$f"; '
    'while [ $i -lt 64 ]; do i=$((i + 1)); n=$(( $(stat -f -c %a "$d") * bs - keep )); '
    '[ $n -ge $bs ] || break; o=$(stat -c %s "$f"); '
    'fallocate -o $o -l $n "$f" 2>/dev/null '
    '|| fallocate -o $o -l $((n / 2)) "$f" 2>/dev/null || break; done; '
    'echo "free $(( $(stat -f -c %a "$d") * bs )) B of $(( $(stat -f -c %b "$d") * bs )) B"'
)
SIGNS = "No space left|ENOSPC|log dir|offline|Shutdown broker|PANIC|could not (write|extend)|IOException"
# `restore --all --hosts` without a journal: every ballast on the host's own filesystems (FILL refuses the
# root one; the capped volumes are loop-mounted ext4, a test VM's a tmpfs), the data directory being at most
# a few levels below its mount point.
BALLAST_FS = "ext2,ext3,ext4,xfs,btrfs,tmpfs"
FIND_BALLASTS = (
    f'findmnt -rn -o TARGET -t {BALLAST_FS} | while read -r m; do [ "$m" = / ] || '
    f'find "$m" -xdev -maxdepth 4 -type f -name "{ballast_name("")}*" 2>/dev/null; done | sort -u'
)


def fill_cmd(directory: str, ballast: str, free: int) -> list[str]:
    return ["sh", "-c", FILL, "sh", directory, ballast, str(free)]


def signs_cmd(unit: str, since: int) -> list[str]:
    script = 'journalctl -u "$1" --since "@$2" --no-pager -o cat | grep -E "$3" | head -n 5'
    return ["sh", "-c", script, "sh", unit, str(since), SIGNS]


class DiskUnit:
    kinds = ("disk fill",)
    undo_ops = ("disk-fill-host",)

    def refuse(self, fault: FaultSpec, hosts: dict[str, VmHost]) -> str | None:
        on_vms = [t for t in fault.targets if t in hosts]
        if on_vms and not fault.params["volume"]:
            return f"disk fill on a VM needs 'volume': the data directory's path on {on_vms[0]}'s host"
        return None

    def checks(self, host: VmHost, action: Action, fault_id: str) -> list[Step]:
        return []

    def undo_spec(
        self, host: VmHost, hosts: dict[str, VmHost], action: Action, fault_id: str
    ) -> dict[str, Any]:
        directory = action.fault.params["volume"]
        since = SshShell(host, []).run(["date", "+%s"]).stdout.strip()
        return {"host": host.to_json(), "op": "disk-fill-host", "unit": host.unit, "dir": directory} | {
            "ballast": f"{directory.rstrip('/')}/{ballast_name(fault_id)}",
            "since": int(since or 0),
        }

    def apply(self, host: VmHost, action: Action, spec: dict[str, Any]) -> list[Step]:
        free = action.fault.params["free_bytes"]
        cmd = fill_cmd(spec["dir"], spec["ballast"], free)

        def do(calls: list[str], _stop: threading.Event) -> None:
            calls.append(f"fill until {format_size(free)} is free:")
            SshShell(host, calls).run(cmd)

        return [Step((ssh_line(host, cmd),), do)]

    def undo(self, spec: dict[str, Any]) -> list[Step]:
        host, unit = VmHost.from_json(spec["host"]), spec["unit"]
        signs, rm, start = (
            signs_cmd(unit, spec["since"]),
            ["rm", "-f", spec["ballast"]],
            ["systemctl", "start", unit],
        )

        def do(calls: list[str], _stop: threading.Event) -> None:
            shell = SshShell(host, calls)
            state = unit_state(shell, unit)
            calls.append(f"{OBSERVED}{unit} {state.get('ActiveState')} ({state.get('SubState')})")
            found = shell.run(signs, check=False).stdout.splitlines()
            calls += [f"{OBSERVED}log: {line.strip()[:240]}" for line in found if line.strip()]
            shell.run(rm)
            if state.get("ActiveState") in ("failed", "inactive"):
                shell.run(start)

        shows = (
            ssh_line(host, signs),
            ssh_line(host, rm),
            ssh_line(host, start, "if the full disk stopped it"),
        )
        return [Step(shows, do)]


def sweep_ballasts(shell: SshShell, keep: tuple[str, ...], units: tuple[str, ...]) -> list[str]:
    """`restore --all --hosts`, for a lost journal: remove every ballast on the host except those whose name
    starts with `keep` (runs in progress). Which unit a ballast's disk stopped is not known without the
    journal: when one was removed and no run is active, each of the host's `units` that failed is started
    again (one stopped cleanly, `inactive`, is left as it is)."""
    found = shell.run(["sh", "-c", FIND_BALLASTS], check=False).stdout.split("\n")
    paths = [p for p in found if p.strip() and not p.rsplit("/", 1)[-1].startswith(keep)]
    swept = []
    for path in paths:
        shell.run(["rm", "-f", path])
        swept.append(f"rm {path}")
    if paths and not keep:
        for unit in units:
            if unit_state(shell, unit).get("ActiveState") == "failed":
                shell.run(["systemctl", "reset-failed", unit], check=False)
                shell.run(["systemctl", "start", unit], timeout_s=START_TIMEOUT_S)
                swept.append(f"systemctl start {unit} (failed; a full disk may have stopped it)")
    return swept


UNIT = DiskUnit()
