"""The docker executor (the default): one unit per kind family, each planning, applying and undoing its
kinds through the Docker Engine API and sidecars. Register a new family's unit in UNITS."""

from __future__ import annotations

from tools.chaos.docker import disk, iptables, lifecycle, netem, proxy, spark, stress
from tools.chaos.docker.unit import DockerUnit

UNITS: tuple[DockerUnit, ...] = (
    lifecycle.UNIT,
    iptables.UNIT,
    netem.UNIT,
    stress.UNIT,
    disk.UNIT,
    proxy.UNIT,
    spark.UNIT,
)
BY_KIND: dict[str, DockerUnit] = {kind: unit for unit in UNITS for kind in unit.kinds}
BY_UNDO_OP: dict[str, DockerUnit] = {op: unit for unit in UNITS for op in unit.undo_ops}


def unit_for(kind: str) -> DockerUnit:
    return BY_KIND[kind]
