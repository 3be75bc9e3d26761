"""Pumba unit for kill-executor: refused before anything runs (Pumba acts on whole containers; it cannot
signal one process inside one)."""

from __future__ import annotations

from typing import Any

from tools.chaos.faults import FaultSpec
from tools.chaos.pumba.unit import PumbaMappingError


class SparkUnit:
    kinds = ("kill-executor",)

    def argv(
        self, fault: FaultSpec, container_name: str, *, image: str, peer_ips: list[str] | None
    ) -> list[str]:
        raise PumbaMappingError(
            f"{fault.kind}: Pumba acts on whole containers, not on one process inside one "
            "(use the docker or systemd executor)"
        )

    def undo_spec(self, fault: FaultSpec, docker_spec: dict[str, Any]) -> dict[str, Any]:
        return docker_spec

    def hold_ms(self, fault: FaultSpec) -> int | None:
        return 0


UNIT = SparkUnit()
