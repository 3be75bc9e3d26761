"""systemd unit for iptables loss and iptables partition: the same tagged rules as in a container, in the
host's INPUT chain, behind an ACCEPT for the SSH port so the fault can always be undone."""

from __future__ import annotations

import threading
from typing import Any

from tools.chaos import netfilter
from tools.chaos.config import rule_comment
from tools.chaos.faults import FaultSpec
from tools.chaos.outcome import FaultFailed
from tools.chaos.plan import Step
from tools.chaos.rules import insert_rules, removal_order, remove_rules
from tools.chaos.schedule import Action
from tools.chaos.ssh import SshShell
from tools.chaos.systemd.host import resolve_ipv4, ssh_exemption, ssh_line
from tools.chaos.vm_hosts import VmHost

# Undo op, as written in the journal's intent records (with "host", the VmHost as JSON):
#   {"op": "host-iptables", "rules": [...], "comment": ...}   delete the rules over SSH


def _check_interface(host: VmHost, interface: str) -> None:
    # iptables accepts a rule for an interface that does not exist, and it then drops nothing.
    result = SshShell(host, []).run(["ip", "-o", "link", "show", "dev", interface], check=False)
    if result.exit_code != 0:
        raise FaultFailed(
            f"{host.ssh_host} has no interface {interface} (set `interface:` for it in the hosts file)"
        )


class IptablesUnit:
    kinds = ("iptables loss", "iptables partition")
    undo_ops = ("host-iptables",)

    def refuse(self, fault: FaultSpec, hosts: dict[str, VmHost]) -> str | None:
        if fault.kind != "iptables partition":
            return None
        for target in fault.targets:
            strangers = [p for p in fault.params["peers"] if (p in hosts) != (target in hosts)]
            if strangers:
                return (
                    f"{target} and its peer {strangers[0]} must both be systemd hosts or both "
                    "containers (a partition cuts addresses within one network)"
                )
        return None

    def checks(self, host: VmHost, action: Action, fault_id: str) -> list[Step]:
        interface = host.interface or action.fault.params["interface"]
        return [Step((), lambda calls, stop: _check_interface(host, interface))]

    def undo_spec(
        self, host: VmHost, hosts: dict[str, VmHost], action: Action, fault_id: str
    ) -> dict[str, Any]:
        params, comment = action.fault.params, rule_comment(fault_id)
        interface = host.interface or params["interface"]
        spec: dict[str, Any] = {"host": host.to_json(), "op": "host-iptables", "comment": comment}
        if action.kind == "iptables loss":
            rules = netfilter.loss_rules(params | {"interface": interface}, comment)
        else:
            ips = [resolve_ipv4(hosts[peer].address) for peer in params["peers"]]
            rules = netfilter.partition_rules(interface, ips, comment)
            spec["peer_ips"] = ips
        # The exemption first: inserted in order, it is on top before any DROP goes in below it.
        return spec | {"rules": [ssh_exemption(host, comment), *rules]}

    def apply(self, host: VmHost, action: Action, spec: dict[str, Any]) -> list[Step]:
        rules = spec["rules"]
        shows = tuple(ssh_line(host, netfilter.insert_cmd(r, i)) for i, r in enumerate(rules, start=1))
        return [Step(shows, lambda calls, _stop: insert_rules(SshShell(host, calls), rules, in_order=True))]

    def undo(self, spec: dict[str, Any]) -> list[Step]:
        host, rules, comment = VmHost.from_json(spec["host"]), spec["rules"], spec.get("comment")

        def do(calls: list[str], _stop: threading.Event) -> None:
            remove_rules(SshShell(host, calls), rules, comment)

        return [Step(tuple(ssh_line(host, netfilter.delete_cmd(r)) for r in removal_order(rules)), do)]


UNIT = IptablesUnit()
