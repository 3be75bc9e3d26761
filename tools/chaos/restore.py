"""`tools chaos restore`: revert everything a run's journal says may still be applied.

Safe at any time after the run's process died (SIGKILL included) and safe to repeat: each undo looks at the
live state first, and a fault is marked undone only once its undo has succeeded. The runner calls the
same code at the end of every run for faults held until then.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import docker
from docker.errors import NotFound

from tools.chaos.config import RULE_COMMENT_PREFIX, ChaosConfig
from tools.chaos.docker.disk import sweep_ballasts
from tools.chaos.journal import Journal, now_ms, open_intents, pumba_processes, read_journal
from tools.chaos.outcome import RESTORED_AFTER_CRASH, FaultFailed, FaultOutcome, TargetVanished
from tools.chaos.rules import sweep_rules
from tools.chaos.sidecar import Sidecar, remove_sidecars
from tools.chaos.toxiproxy import sweep_toxics
from tools.chaos.undo import undo
from tools.errors import EXIT_BAD_INPUT, ToolError
from tools.run.layout import JOURNAL_FILE, LOCK_FILE
from tools.run.timeline import Timeline, line

PUMBA_SKIP_LABEL = "com.gaiaadm.pumba.skip"


class RunLock:
    """Held by a running `chaos run` (the kernel drops it when the process dies, even on SIGKILL)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._handle: IO[str] | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


@dataclass
class RestoreReport:
    run_dir: Path
    closed: list[tuple[str, str]] = field(default_factory=list)  # (fault_id, outcome)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (fault_id, why): still open, retry later
    sidecars_removed: list[str] = field(default_factory=list)
    pumba_stopped: list[int] = field(default_factory=list)
    rules_swept: list[str] = field(default_factory=list)
    skipped_active: bool = False


def _pid_runs(pid: int, argv0: str) -> bool:
    """True if pid is alive and still the program we started (pid reuse guard)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # argv0 is first for a binary; second after the interpreter for a script with a shebang.
    return argv0 in [part.decode(errors="replace") for part in cmdline[:2]]


def _stop_pumba(client: docker.DockerClient, records: list[dict[str, Any]], report: RestoreReport) -> None:
    """An orphaned Pumba would keep acting (and could re-apply after we revert): SIGTERM it, then SIGKILL."""
    for record in pumba_processes(records):
        pid, argv0 = int(record["pid"]), record["argv"][0]
        if not _pid_runs(pid, argv0):
            continue
        os.kill(pid, signal.SIGTERM)  # Pumba reverts its own fault on SIGTERM
        deadline = time.monotonic() + 10
        while _pid_runs(pid, argv0) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_runs(pid, argv0):
            os.kill(pid, signal.SIGKILL)
        report.pumba_stopped.append(pid)
    # Pumba's own sidecars (label com.gaiaadm.pumba.skip) in our targets' namespaces.
    targets = {f"container:{r['container_id']}" for r in open_intents(records)}
    for container in client.containers.list(
        all=True, filters={"label": f"{PUMBA_SKIP_LABEL}=true"}, ignore_removed=True
    ):
        if container.attrs.get("HostConfig", {}).get("NetworkMode") in targets:
            try:
                container.remove(force=True)
                report.sidecars_removed.append(container.name or "")
            except NotFound:
                pass


def restore_run(
    client: docker.DockerClient,
    cfg: ChaosConfig,
    run_dir: Path,
    *,
    outcome: str = RESTORED_AFTER_CRASH,
    calls_by_fault: dict[str, list[str]] | None = None,
) -> RestoreReport:
    """Undo every open intent of one run. The caller holds the run's lock."""
    report = RestoreReport(run_dir)
    records = read_journal(run_dir)
    run_id = next((r["run_id"] for r in records if r.get("type") == "run-start"), run_dir.name)
    journal, timeline = Journal(run_dir), Timeline(run_dir)
    _stop_pumba(client, records, report)
    written = timeline.written_ids()
    applied = {r["fault_id"]: r.get("calls", []) for r in records if r.get("type") == "applied"}
    for intent in open_intents(records):
        fault_id = intent["fault_id"]
        known = (calls_by_fault or {}).get(fault_id)
        calls = list(known if known is not None else applied.get(fault_id, []))
        closing = outcome
        try:
            undo(client, cfg, intent["undo"], run_id=run_id, fault_id=fault_id, calls=calls)
        except TargetVanished:
            closing = TargetVanished.outcome
        except FaultOutcome as exc:
            # Leave it open: the next restore tries again.
            report.failed.append((fault_id, exc.detail))
            continue
        end = now_ms()
        if fault_id not in written:
            timeline.append(_line(intent, calls, end, closing))
        journal.undone(fault_id, closing, end)
        report.closed.append((fault_id, closing))
    report.sidecars_removed += remove_sidecars(client, cfg, run_id)
    return report


def _line(intent: dict[str, Any], calls: list[str], end_ms: int, outcome: str) -> dict[str, Any]:
    executor = intent.get("executor", "docker")
    call = intent.get("call") or []
    extra: dict[str, Any] = {"name": intent.get("name", ""), "restored_by": "restore"}
    if executor == "pumba":
        extra["api_calls"] = calls
    return line(
        fault_id=intent["fault_id"],
        kind=intent["kind"],
        target=intent["target"],
        container=intent["container"],
        params=intent.get("params", {}),
        executor=executor,
        call=call if executor == "pumba" else [*call, *calls],
        start_ms=int(intent.get("start_ms", end_ms)),
        end_ms=end_ms,
        outcome=outcome,
        **extra,
    )


def restore_dir(client: docker.DockerClient, cfg: ChaosConfig, run_dir: Path) -> RestoreReport:
    """`restore --run-dir`: refuses while the run's own process is still alive (it restores itself)."""
    if not (run_dir / JOURNAL_FILE).exists():
        raise ToolError(f"{run_dir}: no {JOURNAL_FILE} here (not a chaos run directory?)", EXIT_BAD_INPUT)
    lock = RunLock(run_dir)
    if not lock.acquire():
        raise ToolError(
            f"{run_dir}: the run is still active (pid {lock.holder()}); "
            "send it SIGTERM and it restores itself",
            EXIT_BAD_INPUT,
        )
    try:
        return restore_run(client, cfg, run_dir)
    finally:
        lock.release()


def restore_all(client: docker.DockerClient, cfg: ChaosConfig) -> list[RestoreReport]:
    """`restore --all`: every run under the runs dir, leftover sidecars, and stray chaosbed rules."""
    reports, active = [], set()
    journals = sorted(cfg.runs_root.glob(f"*/{JOURNAL_FILE}")) if cfg.runs_root.exists() else []
    for path in journals:
        lock = RunLock(path.parent)
        if not lock.acquire():
            records = read_journal(path.parent)
            active.add(next((r["run_id"] for r in records if r.get("type") == "run-start"), path.parent.name))
            reports.append(RestoreReport(path.parent, skipped_active=True))
            continue
        try:
            reports.append(restore_run(client, cfg, path.parent))
        finally:
            lock.release()
    sweep = RestoreReport(cfg.runs_root)
    for container in client.containers.list(
        filters={"label": f"{cfg.sidecar_label}=true"}, all=True, ignore_removed=True
    ):
        if container.labels.get(cfg.run_label) not in active:
            try:
                container.remove(force=True)
                sweep.sidecars_removed.append(container.name or "")
            except NotFound:
                pass
    sweep.rules_swept = _sweep_rules(client, cfg, active)
    sweep.rules_swept += sweep_toxics(cfg.toxiproxy_url, active)
    sweep.rules_swept += sweep_ballasts(client, cfg, active)
    reports.append(sweep)
    return reports


def _pipeline_containers(client: docker.DockerClient, cfg: ChaosConfig) -> list[Any]:
    """Running chaos targets: labelled managed, or named with the prefix (sidecars excluded)."""
    found = {
        c.id: c
        for c in client.containers.list(filters={"label": f"{cfg.managed_label}=true"}, ignore_removed=True)
    }
    for container in client.containers.list(filters={"name": cfg.container_prefix}, ignore_removed=True):
        named = (container.name or "").startswith(cfg.container_prefix)
        if named and cfg.sidecar_label not in container.labels:
            found.setdefault(container.id, container)
    return list(found.values())


def _sweep_rules(client: docker.DockerClient, cfg: ChaosConfig, active: set[str]) -> list[str]:
    """Safety net for a lost journal: delete chaosbed-tagged rules in every running managed container."""
    swept: list[str] = []
    active_prefixes = tuple(f"{RULE_COMMENT_PREFIX}{run}/" for run in active)
    for container in _pipeline_containers(client, cfg):
        if container.attrs.get("HostConfig", {}).get("NetworkMode") == "host":
            continue  # never touch the host's own rules
        calls: list[str] = []
        try:
            with Sidecar(
                client, cfg, run_id="restore-sweep", fault_id="sweep", target_id=container.id, calls=calls
            ) as sidecar:
                swept += [f"{container.name}: {c}" for c in sweep_rules(sidecar, active_prefixes)]
        except (FaultFailed, TargetVanished):
            continue  # stopped or vanished meanwhile: no netns, no rules
    return swept
