"""Pumba unit for iptables loss and iptables partition (Pumba's pkg/chaos/iptables)."""

from __future__ import annotations

from typing import Any

from tools.chaos import netfilter
from tools.chaos.faults import FaultSpec
from tools.chaos.pumba.unit import PumbaMappingError, interface_flag, num, ports


class IptablesUnit:
    kinds = ("iptables loss", "iptables partition")

    def argv(
        self, fault: FaultSpec, container_name: str, *, image: str, peer_ips: list[str] | None
    ) -> list[str]:
        params = fault.params
        head = ["iptables", "--duration", params["duration"], *interface_flag(params)]
        if fault.kind == "iptables partition":
            if not peer_ips:
                raise PumbaMappingError("a partition needs the peers' addresses")
            # Pumba OR-s repeated --source values into one DROP rule each: exactly a drop-all from every peer.
            sources = [x for ip in peer_ips for x in ("--source", f"{ip}/32")]
            return [
                *head, "--iptables-image", image, "--pull-image=false", *sources,
                "loss", "--probability", "1", container_name,
            ]  # fmt: skip
        probability = params.get("probability")
        if probability is not None and round(probability, 2) != probability:
            raise PumbaMappingError(
                f"probability {probability!r} has more than 2 decimals and Pumba would round it to "
                f"{probability:.2f}; use the docker executor or a 2-decimal probability"
            )
        proto = [] if params["protocol"] == "any" else ["--protocol", params["protocol"]]
        filters = [x for cidr in params["source"] for x in ("--source", cidr)]
        filters += [x for cidr in params["destination"] for x in ("--destination", cidr)]
        filters += ports("--src-port", params["src_port"]) + ports("--dst-port", params["dst_port"])
        if params["mode"] == "nth":
            loss = [
                "loss",
                "--mode",
                "nth",
                "--every",
                str(params["every"]),
                "--packet",
                str(params["packet"]),
            ]
        else:
            loss = ["loss", "--probability", num(params["probability"])]
        return [
            *head, *proto, "--iptables-image", image, "--pull-image=false", *filters, *loss, container_name,
        ]  # fmt: skip

    def undo_spec(self, fault: FaultSpec, docker_spec: dict[str, Any]) -> dict[str, Any]:
        # Pumba's rules carry no comment and a 2-decimal probability: delete exactly those.
        params = fault.params
        if fault.kind == "iptables loss":
            rules = netfilter.loss_rules(params, None)
        else:
            rules = netfilter.pumba_partition_rules(params["interface"], docker_spec["peer_ips"])
        return docker_spec | {"rules": rules, "comment": None}

    def hold_ms(self, fault: FaultSpec) -> int | None:
        return 0  # Pumba waits out the duration and removes its rules itself


UNIT = IptablesUnit()
