"""Build the executor a run uses: docker (built in) or pumba for containers, plus systemd for the services
of a hosts file. `run` and `run --dry-run` get the same one, so a dry run plans what the run would do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker

from tools.chaos.config import ChaosConfig
from tools.chaos.docker.executor import DockerExecutor
from tools.chaos.journal import Journal
from tools.chaos.pumba.executor import PumbaExecutor
from tools.chaos.routing import RoutedExecutor
from tools.chaos.systemd.executor import SystemdExecutor
from tools.chaos.vm_hosts import VmHost


def build_executor(
    client: docker.DockerClient,
    cfg: ChaosConfig,
    run_id: str,
    *,
    pumba_bin: str | None,
    hosts: dict[str, VmHost],
    journal: Journal | None = None,
    run_dir: Path | None = None,
) -> Any:
    chosen: Any = (
        PumbaExecutor(client, cfg, run_id, pumba_bin, journal, run_dir)
        if pumba_bin
        else DockerExecutor(client, cfg, run_id)
    )
    if hosts:
        chosen = RoutedExecutor(chosen, SystemdExecutor(hosts))
    return chosen
