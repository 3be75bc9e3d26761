"""The pumba executor: runs a user's Pumba binary. One unit per kind family maps a fault to Pumba's exact
argv; register a new family's unit in UNITS."""

from __future__ import annotations

from tools.chaos.pumba import disk, iptables, lifecycle, netem, proxy, spark, stress
from tools.chaos.pumba.unit import PumbaMappingError, PumbaUnit
from tools.chaos.schedule import Action

UNITS: tuple[PumbaUnit, ...] = (
    lifecycle.UNIT,
    iptables.UNIT,
    netem.UNIT,
    stress.UNIT,
    disk.UNIT,
    proxy.UNIT,
    spark.UNIT,
)
BY_KIND: dict[str, PumbaUnit] = {kind: unit for unit in UNITS for kind in unit.kinds}
GLOBAL_FLAGS = ["--log-level", "info", "--json"]


def unit_for(kind: str) -> PumbaUnit:
    return BY_KIND[kind]


def pumba_argv(
    action: Action, container_name: str, *, pumba_bin: str, image: str, peer_ips: list[str] | None = None
) -> list[str]:
    """The exact Pumba argv for one action. Raises PumbaMappingError for what Pumba cannot express exactly."""
    flags = unit_for(action.kind).argv(action.fault, container_name, image=image, peer_ips=peer_ips)
    return [pumba_bin, *GLOBAL_FLAGS, *flags]


__all__ = ["GLOBAL_FLAGS", "UNITS", "PumbaMappingError", "pumba_argv", "unit_for"]
