"""Pumba unit for the netem kinds (Pumba's pkg/chaos/netem)."""

from __future__ import annotations

from typing import Any

from tools.chaos import netem
from tools.chaos.faults import FaultSpec
from tools.chaos.pumba.unit import interface_flag, num, ports


class NetemUnit:
    kinds = ("netem delay", "netem loss", "netem rate", "netem duplicate", "netem corrupt")

    def argv(
        self, fault: FaultSpec, container_name: str, *, image: str, peer_ips: list[str] | None
    ) -> list[str]:
        params = fault.params
        sub = netem.NETEM_SUBCOMMAND[fault.kind]
        parent = ["netem", "--duration", params["duration"], *interface_flag(params)]
        parent += [x for cidr in params["destination"] for x in ("--target", cidr)]
        parent += ports("--egress-port", params["egress_port"]) + ports(
            "--ingress-port", params["ingress_port"]
        )
        parent += ["--tc-image", image, "--pull-image=false"]
        if sub == "delay":
            flags = ["--time", str(params["time"]), "--jitter", str(params["jitter"])]
            flags += ["--correlation", num(params["correlation"])]
            flags += ["--distribution", params["distribution"]] if params["distribution"] else []
        elif sub == "rate":
            flags = ["--rate", params["rate"], "--packetoverhead", str(params["packetoverhead"])]
            flags += ["--cellsize", str(params["cellsize"]), "--celloverhead", str(params["celloverhead"])]
        else:
            flags = ["--percent", num(params["percent"]), "--correlation", num(params["correlation"])]
        return [*parent, sub, *flags, container_name]

    def undo_spec(self, fault: FaultSpec, docker_spec: dict[str, Any]) -> dict[str, Any]:
        return docker_spec  # the same root qdisc as the docker executor's: deleted the same way

    def hold_ms(self, fault: FaultSpec) -> int | None:
        return 0  # Pumba waits out the duration and deletes its qdisc itself


UNIT = NetemUnit()
