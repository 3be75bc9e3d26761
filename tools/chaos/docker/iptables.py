"""Docker unit for iptables loss and iptables partition: tagged rules in the target's network namespace,
inserted and removed from a sidecar, as Pumba does it (tools/chaos/netfilter.py builds the rules)."""

from __future__ import annotations

import threading
from typing import Any

from tools.chaos import netfilter, targets
from tools.chaos.config import rule_comment
from tools.chaos.docker.engine import Engine, network_checks, sidecar_line, skip_if_stopped
from tools.chaos.outcome import FaultFailed
from tools.chaos.plan import Step
from tools.chaos.rules import insert_rules, removal_order, remove_rules
from tools.chaos.schedule import Action
from tools.chaos.targets import Target

# Undo op, as written in the journal's intent records:
#   {"op": "iptables", "container_id": ..., "rules": [...], "comment": "chaosbed:<id>" | null}
#   (a partition's also carries "peer_ips", and "peers_missing" and "notes" when a peer was down)


def peer_ips(engine: Engine, peers: list[str]) -> tuple[list[str], list[str]]:
    """The peers' addresses now. A peer that is down has none (and nothing to cut off): it is skipped
    and reported, unless no peer has an address at all."""
    ips: list[str] = []
    missing: list[str] = []
    for service in peers:
        peer = targets.find(engine.client, engine.cfg, service)
        found = targets.ipv4_addresses(engine.client, peer.container_id) if peer else []
        if not found:
            missing.append(service)
        ips += [ip for ip in found if ip not in ips]
    if not ips:
        raise FaultFailed(f"no peer has an IPv4 address (all down or missing: {', '.join(missing)})")
    return ips, missing


def insert(engine: Engine, cid: str, fault_id: str, rules: list[netfilter.Rule], calls: list[str]) -> None:
    with engine.sidecar(fault_id, cid, calls) as sidecar:
        insert_rules(sidecar, rules)


class IptablesUnit:
    kinds = ("iptables loss", "iptables partition")
    undo_ops = ("iptables",)

    def checks(self, engine: Engine, action: Action, target: Target, fault_id: str) -> list[Step]:
        return [network_checks(engine, target.container_id, target.name)]

    def undo_spec(self, engine: Engine, action: Action, target: Target, fault_id: str) -> dict[str, Any]:
        params, comment = action.fault.params, rule_comment(fault_id)
        spec: dict[str, Any] = {"op": "iptables", "container_id": target.container_id, "comment": comment}
        if action.kind == "iptables loss":
            return spec | {"rules": netfilter.loss_rules(params, comment)}
        ips, missing = peer_ips(engine, params["peers"])
        spec |= {"rules": netfilter.partition_rules(params["interface"], ips, comment), "peer_ips": ips}
        if missing:
            spec |= {
                "peers_missing": missing,
                "notes": [f"peers down, nothing to cut off: {', '.join(missing)}"],
            }
        return spec

    def apply(
        self, engine: Engine, action: Action, target: Target, fault_id: str, spec: dict[str, Any]
    ) -> list[Step]:
        cid, rules = target.container_id, spec["rules"]
        shows = (sidecar_line(cid), *[" ".join(netfilter.insert_cmd(r)) for r in rules])
        return [Step(shows, lambda calls, _stop: insert(engine, cid, fault_id, rules, calls))]

    def undo(self, engine: Engine, spec: dict[str, Any], fault_id: str) -> list[Step]:
        cid, rules, comment = spec["container_id"], spec["rules"], spec.get("comment")

        def do(calls: list[str], _stop: threading.Event) -> None:
            if skip_if_stopped(engine, cid, calls):
                return
            with engine.sidecar(fault_id, cid, calls) as sidecar:
                remove_rules(sidecar, rules, comment)

        shows = (sidecar_line(cid), *[" ".join(netfilter.delete_cmd(r)) for r in removal_order(rules)])
        return [Step(shows, do)]


UNIT = IptablesUnit()
