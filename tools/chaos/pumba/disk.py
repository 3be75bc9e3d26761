"""Pumba unit for `disk fill`: refused. Pumba has no disk fault (its families: kill, stop, pause, rm,
restart, netem, iptables, stress), so no Pumba command line fills a disk; the docker executor does."""

from __future__ import annotations

from typing import Any

from tools.chaos.faults import FaultSpec
from tools.chaos.pumba.unit import PumbaMappingError


class DiskUnit:
    kinds = ("disk fill",)

    def argv(
        self, fault: FaultSpec, container_name: str, *, image: str, peer_ips: list[str] | None
    ) -> list[str]:
        raise PumbaMappingError(
            "Pumba has no disk fault: run `disk fill` with the docker executor (without --pumba)"
        )

    def undo_spec(self, fault: FaultSpec, docker_spec: dict[str, Any]) -> dict[str, Any]:
        return docker_spec  # never reached: argv refuses first

    def hold_ms(self, fault: FaultSpec) -> int | None:
        return fault.hold_ms


UNIT = DiskUnit()
