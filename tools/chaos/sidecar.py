"""Short-lived helper containers that share a target's network namespace, the way Pumba runs tc/iptables.

Each one carries the sidecar label (plus run and fault labels) from the moment it is created, so a restore
after a crash can find and remove it even if we died between create and remove.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from types import TracebackType

import docker
from docker.errors import APIError, ImageNotFound, NotFound
from docker.models.containers import Container

from tools.chaos.config import ChaosConfig
from tools.chaos.outcome import FaultFailed, TargetVanished

# Test hook: wait this long before each command in a sidecar, so a crash test can land inside setup
# (before the first rule, or between two rules) deterministically.
HOLD_ENV = "CHAOSBED_DEBUG_SIDECAR_HOLD_MS"


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str


def _target_problem(client: docker.DockerClient, target_id: str) -> Exception | None:
    """Why a sidecar could not join the target: it is gone, or it is not running."""
    try:
        state = client.api.inspect_container(target_id)["State"]
    except NotFound:
        return TargetVanished(f"container {target_id[:12]} no longer exists")
    if not state.get("Running"):
        return FaultFailed(f"container {target_id[:12]} is {state.get('Status')}, not running")
    return None


class Sidecar:
    """`with Sidecar(...) as sc: sc.run([...])`; the container is removed on exit, whatever happened."""

    def __init__(
        self,
        client: docker.DockerClient,
        cfg: ChaosConfig,
        *,
        run_id: str,
        fault_id: str,
        target_id: str | None,
        calls: list[str],
    ) -> None:
        self.client = client
        self.cfg = cfg
        self.run_id = run_id
        self.fault_id = fault_id
        self.target_id = target_id  # None: a throwaway namespace of its own (network_mode=none)
        self.calls = calls
        self.container: Container | None = None

    def __enter__(self) -> Sidecar:
        image = self.cfg.nettools_image
        try:
            self.client.images.get(image)
        except ImageNotFound:
            raise FaultFailed(
                f"image {image} is not on this engine (build it with `make setup`; never pulled)"
            ) from None
        mode = f"container:{self.target_id}" if self.target_id else "none"
        self.calls.append(f"POST /containers/create image={image} network_mode={mode} cap_add=NET_ADMIN")
        try:
            self.container = self.client.containers.create(
                image,
                entrypoint=["sleep"],
                command=["infinity"],
                name=f"{self.cfg.container_prefix}sidecar-{uuid.uuid4().hex[:10]}",
                labels={
                    self.cfg.sidecar_label: "true",
                    self.cfg.run_label: self.run_id,
                    self.cfg.fault_label: self.fault_id,
                },
                network_mode=mode,
                cap_add=["NET_ADMIN"],
                stop_signal="SIGKILL",
            )
            self.calls.append(f"POST /containers/{self.container.short_id}/start")
            self.container.start()
        except APIError as exc:
            self._remove()
            problem = _target_problem(self.client, self.target_id) if self.target_id else None
            raise problem or FaultFailed(f"sidecar setup: {exc.explanation or exc}") from None
        return self

    def run(self, cmd: list[str], check: bool = True) -> ExecResult:
        """Exec one command line; with check, a non-zero exit raises FaultFailed with the tool's stderr."""
        assert self.container is not None
        hold_ms = int(os.environ.get(HOLD_ENV, "0") or 0)
        if hold_ms:
            time.sleep(hold_ms / 1000)
        self.calls.append("exec " + " ".join(cmd))
        try:
            code, (out, err) = self.container.exec_run(cmd, demux=True)
        except APIError as exc:
            problem = _target_problem(self.client, self.target_id) if self.target_id else None
            raise problem or FaultFailed(f"exec {cmd[0]}: {exc.explanation or exc}") from None
        result = ExecResult(
            code or 0, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")
        )
        if check and result.exit_code != 0:
            # Unlike Pumba, keep the tool's own message: it says why (e.g. "qdisc kind is unknown").
            why = (result.stderr or result.stdout).strip().splitlines()
            raise FaultFailed(f"{' '.join(cmd)} exited {result.exit_code}: {why[0] if why else 'no output'}")
        return result

    def _remove(self) -> None:
        if self.container is None:
            return
        self.calls.append(f"DELETE /containers/{self.container.short_id}?force=1")
        with contextlib.suppress(NotFound):
            self.container.remove(force=True)
        self.container = None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._remove()


def remove_sidecars(client: docker.DockerClient, cfg: ChaosConfig, run_id: str | None) -> list[str]:
    """Remove leftover sidecars: of one run, or (run_id=None) every sidecar with our label."""
    labels = [f"{cfg.sidecar_label}=true"]
    if run_id is not None:
        labels.append(f"{cfg.run_label}={run_id}")
    removed = []
    for container in client.containers.list(all=True, filters={"label": labels}, ignore_removed=True):
        try:
            container.remove(force=True)
            removed.append(container.name or container.id or "")
        except NotFound:
            pass
    return removed
