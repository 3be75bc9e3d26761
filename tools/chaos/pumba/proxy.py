"""Pumba unit for the proxy kinds: Pumba has no proxy faults, so each is refused before anything runs
(run them with the docker executor)."""

from __future__ import annotations

from typing import Any

from tools.chaos.faults import FaultSpec
from tools.chaos.kinds.proxy import TOXICS
from tools.chaos.pumba.unit import PumbaMappingError


class ProxyUnit:
    kinds = tuple(TOXICS)

    def argv(
        self, fault: FaultSpec, container_name: str, *, image: str, peer_ips: list[str] | None
    ) -> list[str]:
        raise PumbaMappingError(f"{fault.kind}: Pumba has no proxy faults (use the docker executor)")

    def undo_spec(self, fault: FaultSpec, docker_spec: dict[str, Any]) -> dict[str, Any]:
        return docker_spec

    def hold_ms(self, fault: FaultSpec) -> int | None:
        return None


UNIT = ProxyUnit()
