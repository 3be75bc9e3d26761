"""What a Pumba unit provides for the kinds it handles: the exact Pumba argv, the undo in Pumba's terms,
and how long chaosbed holds the fault after Pumba exits."""

from __future__ import annotations

from typing import Any, Protocol

from tools.chaos.faults import FaultSpec
from tools.chaos.netfilter import probability_text


class PumbaMappingError(ValueError):
    """The fault cannot be expressed exactly as a Pumba command line."""


class PumbaUnit(Protocol):
    kinds: tuple[str, ...]

    def argv(
        self, fault: FaultSpec, container_name: str, *, image: str, peer_ips: list[str] | None
    ) -> list[str]:
        """Pumba's command and flags (after the global flags); PumbaMappingError when not exact."""
        ...

    def undo_spec(self, fault: FaultSpec, docker_spec: dict[str, Any]) -> dict[str, Any]:
        """The docker executor's undo spec, changed to revert what Pumba itself installs."""
        ...

    def hold_ms(self, fault: FaultSpec) -> int | None:
        """How long chaosbed holds it after Pumba exits (Pumba waits out its own duration)."""
        ...


def num(value: float) -> str:
    """Numbers as Pumba's flag parser reads them: 20 not 20.0, 0.3 exactly."""
    return str(int(value)) if float(value).is_integer() else probability_text(value)


def ports(flag: str, values: list[int]) -> list[str]:
    return [flag, ",".join(str(p) for p in values)] if values else []


def interface_flag(params: dict[str, Any]) -> list[str]:
    return [] if params["interface"] == "eth0" else ["--interface", params["interface"]]
