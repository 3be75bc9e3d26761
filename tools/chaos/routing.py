"""One run across both targets: services in the hosts file go to systemd over SSH, the rest to containers."""

from __future__ import annotations

from typing import Any

from tools.chaos.runner import Executor
from tools.chaos.systemd.executor import SystemdExecutor
from tools.chaos.targets import Target


class RoutedExecutor:
    def __init__(self, containers: Executor, systemd: SystemdExecutor) -> None:
        self.containers = containers
        self.systemd = systemd
        self.name = f"{containers.name}+systemd"

    def route(self, service: str) -> Any:
        return self.systemd if service in self.systemd.hosts else self.containers

    def find(self, service: str) -> Target | None:
        return self.route(service).find(service)
