"""What a Docker unit provides for the kinds it handles (one unit per family: lifecycle, iptables, netem)."""

from __future__ import annotations

from typing import Any, Protocol

from tools.chaos.docker.engine import Engine
from tools.chaos.plan import Step
from tools.chaos.schedule import Action
from tools.chaos.targets import Target


class DockerUnit(Protocol):
    kinds: tuple[str, ...]  # the kinds it plans, applies and undoes
    undo_ops: tuple[str, ...]  # the journal's undo "op" values it reverts

    def checks(self, engine: Engine, action: Action, target: Target, fault_id: str) -> list[Step]:
        """Before the intent is journaled: read-only checks (raise FaultFailed/Unsupported to refuse)."""
        ...

    def undo_spec(self, engine: Engine, action: Action, target: Target, fault_id: str) -> dict[str, Any]:
        """Everything its undo needs, journaled before the change (keep the fields: old journals use them)."""
        ...

    def apply(
        self, engine: Engine, action: Action, target: Target, fault_id: str, spec: dict[str, Any]
    ) -> list[Step]: ...

    def undo(self, engine: Engine, spec: dict[str, Any], fault_id: str) -> list[Step]:
        """From the journaled spec alone (a restore after SIGKILL has nothing else); safe to repeat."""
        ...
