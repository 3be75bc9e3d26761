"""Revert one fault from its journaled undo spec. Every step checks the live state first, so running an
undo twice, or after a crash at any instant of the apply, is safe."""

from __future__ import annotations

from typing import Any

import docker
from docker.errors import APIError, NotFound

from tools.chaos import netem
from tools.chaos.config import ChaosConfig
from tools.chaos.outcome import FaultFailed, TargetVanished
from tools.chaos.rules import remove_rules
from tools.chaos.sidecar import Sidecar
from tools.chaos.systemd_executor import undo_on_host

# Undo ops, as written in the journal's intent records:
#   {"op": "start"}     start the container if chaos left it stopped (stop, kill, restart)
#   {"op": "unpause"}   unpause it if it is paused (pause)
#   {"op": "iptables", "rules": [...], "comment": "chaosbed:<id>" | null}   delete the rules (loss, partition)
#   {"op": "tc", "dev": "eth0", "cmds": [...]}   delete our root qdisc (netem)
#   {"op": "none"}      nothing can be undone (rm)
# Each also carries "container_id". Faults on systemd hosts carry "host" (tools.chaos.systemd_executor):
#   {"op": "unit", "unit": "kafka.service", "dropin": path}   SIGCONT, drop the drop-in, start if not active
#   {"op": "host-iptables", "rules": [...], "comment": ...}   delete the rules over SSH


def _state(client: docker.DockerClient, container_id: str) -> dict[str, Any]:
    try:
        return client.api.inspect_container(container_id)["State"]
    except NotFound:
        raise TargetVanished(f"container {container_id[:12]} no longer exists") from None


def _api(call: str, calls: list[str], func: Any, *args: Any, **kwargs: Any) -> None:
    calls.append(call)
    try:
        func(*args, **kwargs)
    except NotFound:
        raise TargetVanished(f"container vanished during {call}") from None
    except APIError as exc:
        raise FaultFailed(f"{call}: {exc.explanation or exc}") from None


def undo(
    client: docker.DockerClient,
    cfg: ChaosConfig,
    spec: dict[str, Any],
    *,
    run_id: str,
    fault_id: str,
    calls: list[str],
) -> None:
    """Revert; raises TargetVanished when the container is gone, FaultFailed when the engine refuses."""
    op = spec["op"]
    cid = spec.get("container_id", "")
    if "host" in spec:
        undo_on_host(spec, calls)
        return
    if op == "none":
        return
    state = _state(client, cid)
    if op == "unpause":
        if state.get("Paused"):
            _api(f"POST /containers/{cid[:12]}/unpause", calls, client.api.unpause, cid)
        return
    if op == "start":
        if state.get("Paused"):  # never leave a container frozen, whoever paused it during the fault
            _api(f"POST /containers/{cid[:12]}/unpause", calls, client.api.unpause, cid)
        if not state.get("Running"):
            _api(f"POST /containers/{cid[:12]}/start", calls, client.api.start, cid)
        return
    if not state.get("Running"):
        # A stopped container's netns is gone, and with it every rule and qdisc we put there.
        calls.append(f"skip: {cid[:12]} not running, its network namespace (and our rules) are gone")
        return
    with Sidecar(client, cfg, run_id=run_id, fault_id=fault_id, target_id=cid, calls=calls) as sidecar:
        if op == "iptables":
            remove_rules(sidecar, spec["rules"], spec.get("comment"))
        elif op == "tc":
            # Only delete a root qdisc that is ours (never applied, or already removed: nothing to do).
            root = sidecar.run(netem.show_root_cmd(spec["dev"])).stdout.strip()
            if netem.root_is_ours(root):
                for cmd in spec["cmds"]:
                    sidecar.run(cmd)
        else:
            raise FaultFailed(f"unknown undo op {op!r} in the journal")
