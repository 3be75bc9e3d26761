"""systemd unit for the netem kinds: not implemented for hosts, so recorded `unsupported` (as on a kernel
without sch_netem), and one scenario file serves both targets."""

from __future__ import annotations

import threading
from typing import Any

from tools.chaos.faults import FaultSpec
from tools.chaos.outcome import Unsupported
from tools.chaos.plan import Step
from tools.chaos.schedule import Action
from tools.chaos.vm_hosts import VmHost


class NetemUnit:
    kinds = ("netem delay", "netem loss", "netem rate", "netem duplicate", "netem corrupt")
    undo_ops: tuple[str, ...] = ()

    def refuse(self, fault: FaultSpec, hosts: dict[str, VmHost]) -> str | None:
        return None

    def checks(self, host: VmHost, action: Action, fault_id: str) -> list[Step]:
        why = f"{action.kind}: netem on systemd hosts is not implemented by chaosbed"

        def unsupported(calls: list[str], stop: threading.Event) -> None:
            raise Unsupported(why)

        return [Step((f"unsupported: {why} (recorded, nothing applied)",), unsupported)]

    def undo_spec(
        self, host: VmHost, hosts: dict[str, VmHost], action: Action, fault_id: str
    ) -> dict[str, Any]:
        raise Unsupported(f"{action.kind}: netem on systemd hosts is not implemented by chaosbed")

    def apply(self, host: VmHost, action: Action, spec: dict[str, Any]) -> list[Step]:
        return []

    def undo(self, spec: dict[str, Any]) -> list[Step]:
        return []


UNIT = NetemUnit()
