"""The systemd executor: faults on systemd units of VMs over SSH, with the docker executor's vocabulary
and restore guarantees. One unit per kind family; register a new family's unit in UNITS."""

from __future__ import annotations

from tools.chaos.systemd import disk, iptables, lifecycle, netem, proxy, spark, stress
from tools.chaos.systemd.unit import SystemdUnit

UNITS: tuple[SystemdUnit, ...] = (
    lifecycle.UNIT,
    iptables.UNIT,
    netem.UNIT,
    stress.UNIT,
    disk.UNIT,
    proxy.UNIT,
    spark.UNIT,
)
BY_KIND: dict[str, SystemdUnit] = {kind: unit for unit in UNITS for kind in unit.kinds}
BY_UNDO_OP: dict[str, SystemdUnit] = {op: unit for unit in UNITS for op in unit.undo_ops}


def unit_for(kind: str) -> SystemdUnit:
    return BY_KIND[kind]
