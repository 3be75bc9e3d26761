"""Every fault kind, in one registry: one module per family (as Pumba's pkg/chaos/<family>/).

A kind's parameters and their checks live in its family's module here; how each executor plans, applies
and undoes it lives in one unit per executor (tools/chaos/docker/, systemd/, pumba/). CONTRIBUTING.md
has the recipe for adding one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.chaos.kinds import disk, iptables, lifecycle, netem, proxy, spark, stress
from tools.chaos.kinds.base import Kind
from tools.chaos.kinds.params import FaultError

REGISTRY: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        *lifecycle.KINDS,
        *iptables.KINDS,
        *netem.KINDS,
        *stress.KINDS,
        *disk.KINDS,
        *proxy.KINDS,
        *spark.KINDS,
    )
}

KINDS = tuple(REGISTRY)
LIFECYCLE_KINDS = tuple(k.name for k in REGISTRY.values() if k.family == "lifecycle")
NETEM_KINDS = tuple(k.name for k in REGISTRY.values() if k.family == "netem")
NETWORK_KINDS = tuple(k.name for k in REGISTRY.values() if k.network)
# Kinds that take a target out of service; the Kafka quorum rule counts these.
DISRUPTIVE_KINDS = frozenset(k.name for k in REGISTRY.values() if k.disruptive)
RANDOM_KINDS = tuple(k.name for k in REGISTRY.values() if k.random_draw is not None)
# (kinds that cannot share a target at one time, why), in registry order
CONFLICT_GROUPS = tuple(
    (tuple(k.name for k in REGISTRY.values() if k.conflicts == why), why)
    for why in dict.fromkeys(k.conflicts for k in REGISTRY.values() if k.conflicts)
)


def get(name: str) -> Kind:
    """The kind's definition; KeyError for a name that is not one (the scenario loader refuses those)."""
    return REGISTRY[name]


# What applies each family's faults, as the report names it.
_MECHANISMS = {
    "lifecycle": "Docker API",
    "iptables": "iptables",
    "netem": "tc netem",
    "stress": "stress-ng",
    "disk": "ballast file",
    "proxy": "Toxiproxy",
    "spark": "signal in the worker",
}


def mechanism(kind: str, params: Mapping[str, Any]) -> str:
    """How a fault was applied: Toxiproxy for the proxy kinds and netem's `via: proxy`, else its family's
    mechanism; "" for a kind this version does not know (an old or foreign timeline)."""
    if kind not in REGISTRY:
        return ""
    family = "proxy" if params.get("via") == "proxy" else REGISTRY[kind].family
    return _MECHANISMS.get(family, family)


__all__ = [
    "CONFLICT_GROUPS",
    "DISRUPTIVE_KINDS",
    "KINDS",
    "LIFECYCLE_KINDS",
    "NETEM_KINDS",
    "NETWORK_KINDS",
    "RANDOM_KINDS",
    "REGISTRY",
    "FaultError",
    "Kind",
    "get",
    "mechanism",
]
