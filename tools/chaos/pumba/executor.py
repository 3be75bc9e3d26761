"""Run faults with a user's Pumba binary: each unit maps its kinds to Pumba's argv; this runs it.

The intent is journaled exactly as for the docker executor (with Pumba's own rules as the undo), plus the
Pumba pid, so `tools chaos restore` can stop an orphaned Pumba and revert its fault after a crash.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import docker

from tools.chaos import targets
from tools.chaos.config import ChaosConfig
from tools.chaos.docker import unit_for as docker_unit_for
from tools.chaos.docker.executor import DockerExecutor
from tools.chaos.journal import Journal
from tools.chaos.outcome import FaultFailed, FaultOutcome
from tools.chaos.pumba import PumbaMappingError, pumba_argv, unit_for
from tools.chaos.schedule import Action
from tools.chaos.targets import Target
from tools.errors import EXIT_BAD_INPUT, ToolError

PUMBA_ENV = "CHAOSBED_PUMBA_BIN"
TERM_GRACE_S = 35  # Pumba's own cleanup timeout is 30 s


def find_pumba(explicit: str | None) -> str:
    """--pumba-bin, then $CHAOSBED_PUMBA_BIN, then `pumba` on PATH; a clear error when there is none."""
    candidate = explicit or os.environ.get(PUMBA_ENV) or shutil.which("pumba")
    if not candidate:
        raise ToolError(
            "--executor pumba needs a Pumba binary: "
            "pass --pumba-bin, set CHAOSBED_PUMBA_BIN or put pumba on PATH",
            EXIT_BAD_INPUT,
        )
    path = Path(candidate)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ToolError(f"Pumba binary {candidate} is not an executable file", EXIT_BAD_INPUT)
    return str(path.resolve())


class PumbaExecutor:
    name = "pumba"

    def __init__(
        self,
        client: docker.DockerClient,
        cfg: ChaosConfig,
        run_id: str,
        pumba_bin: str,
        journal: Journal | None,
        run_dir: Path | None,
    ) -> None:
        self.client = client
        self.cfg = cfg
        self.pumba_bin = pumba_bin
        self.journal = journal  # None for a dry run
        self.run_dir = run_dir
        # Reads, checks, the netem probe and restart_after's start still go through the API.
        self.docker = DockerExecutor(client, cfg, run_id)
        self._argv: dict[str, list[str]] = {}

    def route(self, service: str) -> PumbaExecutor:
        return self

    def find(self, service: str) -> Target | None:
        return self.docker.find(service)

    def argv_for(self, action: Action, target: Target, peer_ips: list[str] | None) -> list[str]:
        try:
            return pumba_argv(
                action,
                target.name,
                pumba_bin=self.pumba_bin,
                image=self.cfg.nettools_image,
                peer_ips=peer_ips,
            )
        except PumbaMappingError as exc:
            raise FaultFailed(f"not expressible in Pumba: {exc}") from None

    def prepare(self, action: Action, target: Target, fault_id: str) -> dict[str, Any]:
        undo = unit_for(action.kind).undo_spec(action.fault, self.docker.prepare(action, target, fault_id))
        self._argv[fault_id] = self.argv_for(action, target, undo.get("peer_ips"))
        return undo

    def call(self, fault_id: str) -> list[str] | None:
        return self._argv.get(fault_id)

    def hold_ms(self, action: Action) -> int | None:
        """Pumba itself waits out the fault; only chaosbed's extensions hold after it exits."""
        return unit_for(action.kind).hold_ms(action.fault)

    def plan(self, action: Action, fault_id: str) -> tuple[str, list[str]]:
        """`run --dry-run`: the one Pumba command line the run would execute."""
        target = targets.require(self.client, self.cfg, action.service)
        try:  # the undo spec the run would journal holds what the argv needs (a partition's peer addresses)
            spec = docker_unit_for(action.kind).undo_spec(self.docker.engine, action, target, fault_id)
        except FaultOutcome:
            spec = {}
        return target.name, [" ".join(self.argv_for(action, target, spec.get("peer_ips")))]

    def apply(
        self,
        action: Action,
        target: Target,
        fault_id: str,
        undo: dict[str, Any],
        calls: list[str],
        stop: threading.Event,
    ) -> None:
        assert self.journal is not None and self.run_dir is not None, "a dry run applies nothing"
        argv = self._argv[fault_id]
        log_path = self.run_dir / f"pumba-{action.short_id}.log"
        with log_path.open("ab") as log:
            # Own session: a terminal's Ctrl-C reaches us only, and we decide when Pumba gets SIGTERM.
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
            self.journal.pumba(fault_id, proc.pid, argv)
            calls.append(f"exec pumba pid={proc.pid}")
            while proc.poll() is None:
                if stop.wait(0.1):
                    proc.send_signal(signal.SIGTERM)  # Pumba reverts its fault on SIGTERM
                    calls.append(f"SIGTERM pumba pid={proc.pid}")
                    try:
                        proc.wait(TERM_GRACE_S)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                    break
        if proc.returncode != 0 and not stop.is_set():
            raise FaultFailed(f"pumba exited {proc.returncode}: {_last_message(log_path)}")


def _last_message(log_path: Path) -> str:
    lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    for raw in reversed(lines):
        try:
            return str(json.loads(raw).get("msg", raw))
        except (json.JSONDecodeError, AttributeError):
            return raw
    return "no output"
