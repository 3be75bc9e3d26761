"""`run --dry-run`: resolve every target and print the exact calls each fault would make, changing nothing.

Unlike Pumba's dry run it does not sleep through the durations: the waits are printed instead.
"""

from __future__ import annotations

from typing import Any

import docker

from tools.chaos import netem, netfilter, targets
from tools.chaos.config import ChaosConfig, rule_comment
from tools.chaos.docker_executor import hold_ms
from tools.chaos.durations import format_duration
from tools.chaos.outcome import FaultFailed
from tools.chaos.pumba_executor import pumba_argv
from tools.chaos.schedule import Action, Schedule
from tools.chaos.systemd_executor import planned_calls
from tools.chaos.vm_hosts import VmHost


def _docker_calls(action: Action, cid: str, fault_id: str, peer_ips: list[str]) -> list[str]:
    kind, params, short = action.kind, action.fault.params, cid[:12]
    hold = hold_ms(action)
    wait = [f"wait {format_duration(hold)}" if hold is not None else "hold until the end of the chaos phase"]
    if kind == "kill":
        return [
            f"POST /containers/{short}/kill?signal={params['signal']}",
            *wait,
            f"POST /containers/{short}/start",
        ]
    if kind == "stop":
        signal = f"POST /containers/{short}/kill?signal=SIGTERM (or the pumba stop-signal label)"
        poll = f"poll every 100ms for {params['time']}s, then SIGKILL"
        return [signal, poll, *wait, f"POST /containers/{short}/start"]
    if kind == "pause":
        return [f"POST /containers/{short}/pause", *wait, f"POST /containers/{short}/unpause"]
    if kind == "restart":
        return [f"POST /containers/{short}/restart?t={params['timeout_s']}"]
    if kind == "rm":
        return [f"DELETE /containers/{short}?force={int(params['force'])}&v={int(params['volumes'])}"]
    sidecar = f"sidecar network_mode=container:{short} cap_add=NET_ADMIN"
    if kind.startswith("iptables"):
        comment = rule_comment(fault_id)
        if kind == "iptables loss":
            rules = netfilter.loss_rules(params, comment)
        else:
            rules = netfilter.partition_rules(params["interface"], peer_ips, comment)
        return [
            sidecar,
            *[" ".join(netfilter.insert_cmd(r)) for r in rules],
            *wait,
            sidecar,
            *[" ".join(netfilter.delete_cmd(r)) for r in rules],
        ]
    return [
        "probe sch_netem in a throwaway namespace (unsupported -> recorded, nothing applied)",
        sidecar,
        *[" ".join(c) for c in netem.apply_cmds(kind, params)],
        *wait,
        sidecar,
        *[" ".join(c) for c in netem.undo_cmds(params)],
    ]


def dry_run(
    client: docker.DockerClient,
    cfg: ChaosConfig,
    schedule: Schedule,
    run_id: str,
    pumba_bin: str | None,
    hosts: dict[str, VmHost] | None = None,
) -> list[dict[str, Any]]:
    rows = []
    hosts = hosts or {}
    for action in schedule.actions:
        host = hosts.get(action.service)
        if host is not None:
            peers = [hosts[p].address for p in action.fault.params.get("peers", [])]
            calls = planned_calls(action, host, action.fault_id(run_id), peers)
            rows.append(
                {
                    "id": action.short_id,
                    "at_ms": action.at_ms,
                    "kind": action.kind,
                    "target": host.label,
                    "call": calls,
                    "executor": "systemd",
                }
            )
            continue
        target = targets.require(client, cfg, action.service)
        peer_ips: list[str] = []
        if action.kind == "iptables partition":
            for peer in action.fault.params["peers"]:
                found = targets.find(client, cfg, peer)
                peer_ips += targets.ipv4_addresses(client, found.container_id) if found else []
        fault_id = action.fault_id(run_id)
        if pumba_bin:
            try:
                call = pumba_argv(
                    action,
                    target.name,
                    pumba_bin=pumba_bin,
                    image=cfg.nettools_image,
                    peer_ips=peer_ips or None,
                )
            except ValueError as exc:
                raise FaultFailed(str(exc)) from None
        else:
            call = _docker_calls(action, target.container_id, fault_id, peer_ips)
        rows.append(
            {
                "id": action.short_id,
                "at_ms": action.at_ms,
                "kind": action.kind,
                "target": target.name,
                "call": call,
            }
        )
    return rows
