"""systemd unit for the proxy kinds: refused before anything runs. No Toxiproxy sits on the VM target's
paths (the toxiproxy role runs on the Docker target only), so there is nothing to add a toxic to."""

from __future__ import annotations

from typing import Any

from tools.chaos.faults import FaultSpec
from tools.chaos.kinds.proxy import TOXICS
from tools.chaos.outcome import FaultFailed
from tools.chaos.plan import Step
from tools.chaos.schedule import Action
from tools.chaos.vm_hosts import VmHost


def refusal(kind: str, target: str) -> str:
    return f"{kind}: no Toxiproxy on the VM target's paths (target {target}); proxy faults run on containers"


class ProxyUnit:
    kinds = tuple(TOXICS)
    undo_ops: tuple[str, ...] = ()

    def refuse(self, fault: FaultSpec, hosts: dict[str, VmHost]) -> str | None:
        on_vms = [t for t in fault.targets if t in hosts]
        return refusal(fault.kind, on_vms[0]) if on_vms else None

    def checks(self, host: VmHost, action: Action, fault_id: str) -> list[Step]:
        return []

    def undo_spec(
        self, host: VmHost, hosts: dict[str, VmHost], action: Action, fault_id: str
    ) -> dict[str, Any]:
        raise FaultFailed(refusal(action.kind, host.service))

    def apply(self, host: VmHost, action: Action, spec: dict[str, Any]) -> list[Step]:
        return []

    def undo(self, spec: dict[str, Any]) -> list[Step]:
        return []


UNIT = ProxyUnit()
