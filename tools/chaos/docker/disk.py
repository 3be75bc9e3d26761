"""Docker unit for `disk fill`: a ballast file in the host directory behind the target's volume.

The volume's host source comes from the Engine API (the container's Mounts). The ballast is written by
this process on the Docker host (fallocate), so the engine must be local; its path is journaled before it
exists. The undo records what the target did meanwhile (exited? which log lines?), removes the ballast and
starts the target again if the full disk stopped it (restart policy "no": chaos decides, and restores).
"""

from __future__ import annotations

import errno
import os
import re
import threading
import time
from typing import Any

import docker
from docker.errors import APIError, NotFound

from tools.chaos.config import ChaosConfig
from tools.chaos.docker.engine import Engine, require_running
from tools.chaos.faults import FaultSpec
from tools.chaos.kinds.disk import format_size
from tools.chaos.outcome import FaultFailed
from tools.chaos.plan import Step
from tools.chaos.schedule import Action
from tools.chaos.targets import Target
from tools.run.timeline import OBSERVED

# Undo op, as written in the journal's intent records:
#   {"op": "disk-fill", "container_id": id, "source": host dir, "ballast": host path, "since": epoch s}
#   record the target's state and log lines since `since`, remove the ballast, start the target if exited
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
# Log lines that say what a full disk did to a component (Kafka, PostgreSQL, Spark/Hadoop).
_SIGNS = re.compile(
    r"No space left|ENOSPC|log dir|offline|Shutdown broker|Shutting down|PANIC|could not (write|extend)"
    r"|disk full|IOException|checkpoint",
    re.IGNORECASE,
)
MAX_LOG_LINES = 5
MAX_FILL_ROUNDS = 64


class VolumeError(ValueError):
    """The fault names no usable volume of its target (a one-line reason)."""


def ballast_name(fault_id: str) -> str:
    # Hidden: Kafka and PostgreSQL skip dot files in their data directories.
    return f".chaosbed-ballast-{_UNSAFE.sub('-', fault_id)}"


def writable_mounts(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in attrs.get("Mounts") or [] if m.get("RW") and m.get("Type") in ("bind", "volume")]


def find_volume(attrs: dict[str, Any], volume: str, name: str) -> dict[str, Any]:
    """The mount the fault fills: the one at `volume`, or the target's only writable one."""
    mounts = writable_mounts(attrs)
    shown = ", ".join(m["Destination"] for m in mounts) or "none"
    if volume:
        for mount in mounts:
            if mount["Destination"].rstrip("/") == volume.rstrip("/"):
                return mount
        raise VolumeError(f"{name} has no writable volume at {volume} (its volumes: {shown})")
    if len(mounts) != 1:
        raise VolumeError(f"{name} has {len(mounts)} writable volumes ({shown}): say which with 'volume'")
    return mounts[0]


def space(source: str) -> tuple[int, int]:
    """(free, size) in bytes of the filesystem holding `source`. Free is what a non-root writer may still
    allocate (f_bavail: ext4 also keeps a few clusters of its own that f_bfree counts); a root reserve (none
    on the capped volumes: mkfs -m 0) stays usable by root."""
    st = os.statvfs(source)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def check_source(source: str, free: int, name: str) -> None:
    """The volume is on this host, on a filesystem of its own (never the host's root), larger than `free`."""
    if not os.path.isdir(source):
        raise VolumeError(
            f"{name}'s volume source {source} is not a directory on this host (a local engine?)"
        )
    if os.stat(source).st_dev == os.stat("/").st_dev:
        raise VolumeError(
            f"{name}'s volume {source} is on the host's root filesystem: filling it would fill the host's "
            "disk (the roles put data on size-capped volumes: roles/capped_volume)"
        )
    _, size = space(source)
    if free >= size:
        raise VolumeError(
            f"'free' {format_size(free)} is not less than {name}'s volume ({format_size(size)})"
        )


def preflight(client: docker.DockerClient, cfg: ChaosConfig, fault: FaultSpec, target: Target) -> None:
    """Before anything is touched (a bad scenario exits 2): the volume exists, is capped and big enough."""
    attrs = client.api.inspect_container(target.container_id)
    mount = find_volume(attrs, fault.params["volume"], target.name)
    check_source(mount["Source"], fault.params["free_bytes"], target.name)


def fill(path: str, source: str, free: int, calls: list[str]) -> None:
    """Allocate `path` until `free` bytes are left. ext4 needs blocks for the file's own extent tree, so
    a single fallocate of everything can fail: ask for half of what is left until within one block."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        block, cap = os.statvfs(source).f_frsize, None
        for _ in range(MAX_FILL_ROUNDS):
            want = space(source)[0] - free
            want = want if cap is None else min(want, cap)
            if want < block:
                break
            offset = os.fstat(fd).st_size
            try:
                os.posix_fallocate(fd, offset, want)
                cap = None
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise FaultFailed(f"fallocate {path}: {exc.strerror}") from None
                os.ftruncate(fd, offset)
                cap = want // 2
    finally:
        os.close(fd)
    left, size = space(source)
    calls.append(f"statvfs {source}: {left} B free of {size} B (ballast {os.path.getsize(path)} B)")


def _log_signs(container: Any, since: int) -> list[str]:
    text = container.logs(since=since, stdout=True, stderr=True).decode(errors="replace")
    # Stack frames ("at org.apache...") repeat what their exception line says.
    lines = [ln.strip() for ln in text.splitlines() if _SIGNS.search(ln) and not ln.strip().startswith("at ")]
    shown = [f"{OBSERVED}log: {ln[:240]}" for ln in lines[:MAX_LOG_LINES]]
    if len(lines) > MAX_LOG_LINES:
        shown.append(f"{OBSERVED}{len(lines) - MAX_LOG_LINES} more such log line(s)")
    return shown


def observe(engine: Engine, spec: dict[str, Any], calls: list[str]) -> dict[str, Any] | None:
    """What the target did during the fill, as `observed:` lines on the fault's record; its state."""
    try:
        container = engine.client.containers.get(spec["container_id"])
    except NotFound:
        calls.append(f"{OBSERVED}container {spec['container_id'][:12]} no longer exists")
        return None
    state = container.attrs.get("State", {})
    if state.get("Running"):
        calls.append(f"{OBSERVED}{container.name} kept running")
    else:
        calls.append(
            f"{OBSERVED}{container.name} {state.get('Status')} (exit code {state.get('ExitCode')}) "
            f"at {state.get('FinishedAt', '')[:23]}"
        )
    try:
        calls += _log_signs(container, int(spec["since"]))
    except APIError as exc:
        calls.append(f"{OBSERVED}no logs ({exc.explanation or exc})")
    return state


def _remove_ballast(path: str, calls: list[str]) -> None:
    calls.append(f"rm {path}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        calls[-1] = f"skip: no ballast {path} (never created, or removed already)"
    except OSError as exc:
        raise FaultFailed(f"rm {path}: {exc.strerror}") from None


def _start_if_exited(engine: Engine, cid: str, state: dict[str, Any] | None, calls: list[str]) -> None:
    if state is None or state.get("Running") or state.get("Status") not in ("exited", "created", "dead"):
        return
    engine.call(calls, f"POST /containers/{cid[:12]}/start", engine.client.api.start, cid)


def sweep_ballasts(client: docker.DockerClient, cfg: ChaosConfig, active: set[str]) -> list[str]:
    """`restore --all`, for a lost journal: remove every ballast in the writable volumes of every managed
    container (running or not: a full disk may have stopped it), except those of runs still in progress."""
    keep = tuple(ballast_name(f"{run}/") for run in active)
    removed: list[str] = []
    listed = client.containers.list(
        all=True, filters={"label": f"{cfg.managed_label}=true"}, ignore_removed=True
    )
    for container in listed:
        for mount in writable_mounts(container.attrs):
            source = mount.get("Source") or ""
            names = os.listdir(source) if os.path.isdir(source) else []
            for name in sorted(n for n in names if n.startswith(ballast_name("")) and not n.startswith(keep)):
                calls: list[str] = []
                _remove_ballast(os.path.join(source, name), calls)
                removed += [f"{container.name}: {call}" for call in calls]
    return removed


class DiskUnit:
    kinds = ("disk fill",)
    undo_ops = ("disk-fill",)
    preflight = staticmethod(preflight)  # targets.check_schedule: a bad volume or size is bad input

    def checks(self, engine: Engine, action: Action, target: Target, fault_id: str) -> list[Step]:
        def check(calls: list[str], stop: threading.Event) -> None:
            require_running(engine, target.container_id, target.name)
            try:
                preflight(engine.client, engine.cfg, action.fault, target)
            except VolumeError as exc:
                raise FaultFailed(str(exc)) from None

        return [Step((), check)]

    def undo_spec(self, engine: Engine, action: Action, target: Target, fault_id: str) -> dict[str, Any]:
        attrs = engine.inspect(target.container_id)
        try:
            source = find_volume(attrs, action.fault.params["volume"], target.name)["Source"]
        except VolumeError as exc:
            raise FaultFailed(str(exc)) from None
        ballast = os.path.join(source, ballast_name(fault_id))
        return {"op": "disk-fill", "container_id": target.container_id, "source": source} | {
            "ballast": ballast,
            "since": int(time.time()),
        }

    def apply(
        self, engine: Engine, action: Action, target: Target, fault_id: str, spec: dict[str, Any]
    ) -> list[Step]:
        free, ballast, source = action.fault.params["free_bytes"], spec["ballast"], spec["source"]
        shows = f"fallocate {ballast} until {format_size(free)} is free on {source}"

        def do(calls: list[str], _stop: threading.Event) -> None:
            left, _size = space(source)
            if left <= free:
                raise FaultFailed(
                    f"{source} has {left} B free, not more than 'free' {free} B: nothing to fill"
                )
            calls.append(shows)
            fill(ballast, source, free, calls)

        return [Step((shows,), do)]

    def undo(self, engine: Engine, spec: dict[str, Any], fault_id: str) -> list[Step]:
        cid, ballast = spec["container_id"], spec["ballast"]
        shows = (
            f"observe {cid[:12]}: state, log lines since the fill",
            f"rm {ballast}",
            f"POST /containers/{cid[:12]}/start (if the full disk stopped it)",
        )

        def do(calls: list[str], _stop: threading.Event) -> None:
            state = observe(engine, spec, calls)
            _remove_ballast(ballast, calls)
            _start_if_exited(engine, cid, state, calls)

        return [Step(shows, do)]


UNIT = DiskUnit()
