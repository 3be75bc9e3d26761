"""What a systemd unit provides for the kinds it handles (one unit per family: lifecycle, iptables, netem)."""

from __future__ import annotations

from typing import Any, Protocol

from tools.chaos.faults import FaultSpec
from tools.chaos.plan import Step
from tools.chaos.schedule import Action
from tools.chaos.vm_hosts import VmHost


class SystemdUnit(Protocol):
    kinds: tuple[str, ...]
    undo_ops: tuple[str, ...]  # the journal's undo "op" values it reverts

    def refuse(self, fault: FaultSpec, hosts: dict[str, VmHost]) -> str | None:
        """Before anything is touched: why this fault cannot run on these hosts, or None."""
        ...

    def checks(self, host: VmHost, action: Action, fault_id: str) -> list[Step]:
        """Before the intent is journaled: read-only (raise FaultFailed/Unsupported to refuse)."""
        ...

    def undo_spec(
        self, host: VmHost, hosts: dict[str, VmHost], action: Action, fault_id: str
    ) -> dict[str, Any]:
        """Everything its undo needs, host included, journaled before the change."""
        ...

    def apply(self, host: VmHost, action: Action, spec: dict[str, Any]) -> list[Step]: ...

    def undo(self, spec: dict[str, Any]) -> list[Step]:
        """From the journaled spec alone (no hosts file after a crash); safe to repeat."""
        ...
