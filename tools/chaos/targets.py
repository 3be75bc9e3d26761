"""Resolve service names to containers: by the service label first, then by the `<prefix><service>` name.

A name that resolves to nothing is an error, never "all containers" (Pumba's no-argument default).
"""

from __future__ import annotations

from dataclasses import dataclass

import docker
from docker.errors import APIError, DockerException, NotFound
from docker.models.containers import Container

from tools.chaos import kinds
from tools.chaos.config import ChaosConfig
from tools.chaos.faults import FaultSpec
from tools.chaos.triggers import is_dynamic
from tools.errors import EXIT_BAD_INPUT, ToolError


@dataclass(frozen=True)
class Target:
    service: str
    container_id: str
    name: str  # without Docker's leading slash
    status: str

    @property
    def running(self) -> bool:
        return self.status == "running"


class TargetError(ToolError):
    pass


def connect() -> docker.DockerClient:
    """A client for the local engine, or a one-line error when it cannot be reached."""
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except DockerException as exc:
        raise ToolError(f"cannot reach the Docker engine: {exc}", EXIT_BAD_INPUT) from None
    return client


def _as_target(service: str, container: Container) -> Target:
    return Target(service, container.id or "", container.name or "", container.status)


def find(client: docker.DockerClient, cfg: ChaosConfig, service: str) -> Target | None:
    """The container of one service, running or not; None when there is none."""
    matches = client.containers.list(
        all=True,
        filters={"label": [f"{cfg.service_label}={service}", f"{cfg.managed_label}=true"]},
        ignore_removed=True,
    )
    if len(matches) > 1:
        names = ", ".join(sorted(c.name or "" for c in matches))
        raise TargetError(f"service {service!r} is ambiguous: several containers carry its label ({names})")
    if matches:
        return _as_target(service, matches[0])
    try:
        return _as_target(service, client.containers.get(f"{cfg.container_prefix}{service}"))
    except NotFound:
        return None


def require(client: docker.DockerClient, cfg: ChaosConfig, service: str) -> Target:
    target = find(client, cfg, service)
    if target is None:
        raise TargetError(
            f"unknown target {service!r}: no container labelled {cfg.service_label}={service} "
            f"or named {cfg.container_prefix}{service}"
        )
    return target


def ipv4_addresses(client: docker.DockerClient, container_id: str) -> list[str]:
    """Every IPv4 address a container holds, across all its networks (used to cut peers off)."""
    try:
        attrs = client.api.inspect_container(container_id)
    except NotFound:
        return []
    except APIError as exc:
        raise ToolError(f"cannot inspect {container_id[:12]}: {exc}", 1) from None
    networks = attrs.get("NetworkSettings", {}).get("Networks") or {}
    return sorted({net["IPAddress"] for net in networks.values() if net.get("IPAddress")})


def check_schedule(
    client: docker.DockerClient, cfg: ChaosConfig, faults: list[FaultSpec], path: object
) -> None:
    """Every target and every partition peer must exist on the engine, before anything is touched."""
    for fault in faults:
        for service in [*fault.targets, *kinds.get(fault.kind).peers(fault.params)]:
            if is_dynamic(service):
                continue  # resolved when the fault fires (tools/chaos/triggers.py)
            try:
                target = require(client, cfg, service)
                if service in fault.targets:
                    _preflight(client, cfg, fault, target)
            except (TargetError, ValueError) as exc:
                raise TargetError(f"{path}: fault #{fault.index} ({fault.name}): {exc}") from None


def _preflight(client: docker.DockerClient, cfg: ChaosConfig, fault: FaultSpec, target: Target) -> None:
    """A unit's checks of the live target that make a fault bad input (e.g. `disk fill`: no such volume)."""
    from tools.chaos.docker import unit_for  # the units import this module

    check = getattr(unit_for(fault.kind), "preflight", None)
    if check is not None:
        check(client, cfg, fault, target)
