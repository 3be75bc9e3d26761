"""Docker unit for the netem kinds: Pumba's tc commands in the target's network namespace, from a sidecar
(tools/chaos/netem.py builds the commands); probed once per run, a kernel without netem is `unsupported`."""

from __future__ import annotations

import threading
from typing import Any

from tools.chaos import netem
from tools.chaos.docker import proxy
from tools.chaos.docker.engine import Engine, network_checks, sidecar_line, skip_if_stopped
from tools.chaos.outcome import FaultFailed, Unsupported
from tools.chaos.plan import Step
from tools.chaos.schedule import Action
from tools.chaos.targets import Target

# Undo op, as written in the journal's intent records:
#   {"op": "tc", "container_id": ..., "dev": "eth0", "cmds": [...]}   delete our root qdisc
PROBE_LINE = "probe sch_netem in a throwaway namespace (unsupported -> recorded, nothing applied)"


def _probe(engine: Engine, needs_prio: bool, fault_id: str) -> str | None:
    """Can this kernel do netem (and prio)? Probed in a namespace of its own: None if so, else why not."""
    probes = netem.PROBE_NETEM + (netem.PROBE_PRIO if needs_prio else [])
    with engine.sidecar(fault_id, None, []) as sidecar:
        for cmd in probes:
            result = sidecar.run(cmd, check=False)
            if result.exit_code != 0:
                qdisc = "sch_prio" if "prio" in cmd else "sch_netem"
                said = result.stderr.strip() or f"exit {result.exit_code}"
                return f"no {qdisc} on this host: `{' '.join(cmd)}` said {said}"
            sidecar.run(netem.PROBE_UNDO, check=False)
    return None


def check_netem(engine: Engine, needs_prio: bool, fault_id: str) -> None:
    """Probe once per run; raise Unsupported (recorded, nothing applied) when the kernel lacks netem."""
    why = engine.once(f"netem-prio={needs_prio}", lambda: _probe(engine, needs_prio, fault_id))
    if why is not None:
        raise Unsupported(why)


def add_qdiscs(
    engine: Engine,
    cid: str,
    fault_id: str,
    dev: str,
    cmds: list[list[str]],
    undo: list[list[str]],
    calls: list[str],
) -> None:
    with engine.sidecar(fault_id, cid, calls) as sidecar:
        root = sidecar.run(netem.show_root_cmd(dev)).stdout.strip()
        if not netem.root_is_default(root):
            # Someone's own qdisc: Pumba fails with "File exists"; we refuse and leave it alone.
            raise FaultFailed(f"{dev} already has a root qdisc ({root}); refusing to replace it")
        root_added = False
        try:
            for cmd in cmds:
                sidecar.run(cmd)
                root_added = True
        except FaultFailed:
            # Pumba leaves a half-built prio tree here; deleting our root removes all of it.
            if root_added:
                for cmd in undo:
                    sidecar.run(cmd, check=False)
            raise


def via_proxy(action: Action) -> bool:
    """`via: proxy`: the proxy unit applies it as a toxic (its undo op is the proxy unit's)."""
    return action.fault.params.get("via") == "proxy"


class NetemUnit:
    kinds = ("netem delay", "netem loss", "netem rate", "netem duplicate", "netem corrupt")
    undo_ops = ("tc",)

    def checks(self, engine: Engine, action: Action, target: Target, fault_id: str) -> list[Step]:
        if via_proxy(action):
            return proxy.UNIT.checks(engine, action, target, fault_id)
        needs_prio = netem.has_filters(action.fault.params)
        probe = Step((PROBE_LINE,), lambda calls, stop: check_netem(engine, needs_prio, fault_id))
        return [network_checks(engine, target.container_id, target.name), probe]

    def undo_spec(self, engine: Engine, action: Action, target: Target, fault_id: str) -> dict[str, Any]:
        if via_proxy(action):
            return proxy.UNIT.undo_spec(engine, action, target, fault_id)
        params = action.fault.params
        return {"op": "tc", "container_id": target.container_id, "dev": params["interface"]} | {
            "cmds": netem.undo_cmds(params)
        }

    def apply(
        self, engine: Engine, action: Action, target: Target, fault_id: str, spec: dict[str, Any]
    ) -> list[Step]:
        if via_proxy(action):
            return proxy.UNIT.apply(engine, action, target, fault_id, spec)
        cid, dev = target.container_id, spec["dev"]
        cmds = netem.apply_cmds(action.kind, action.fault.params)
        shows = (sidecar_line(cid), *[" ".join(c) for c in cmds])
        return [
            Step(
                shows, lambda calls, _stop: add_qdiscs(engine, cid, fault_id, dev, cmds, spec["cmds"], calls)
            )
        ]

    def undo(self, engine: Engine, spec: dict[str, Any], fault_id: str) -> list[Step]:
        if spec["op"] in proxy.UNIT.undo_ops:
            return proxy.UNIT.undo(engine, spec, fault_id)
        cid, dev, cmds = spec["container_id"], spec["dev"], spec["cmds"]

        def do(calls: list[str], _stop: threading.Event) -> None:
            if skip_if_stopped(engine, cid, calls):
                return
            with engine.sidecar(fault_id, cid, calls) as sidecar:
                # Only delete a root qdisc that is ours (never applied, or already removed: nothing to do).
                root = sidecar.run(netem.show_root_cmd(dev)).stdout.strip()
                if netem.root_is_ours(root):
                    for cmd in cmds:
                        sidecar.run(cmd)

        return [Step((sidecar_line(cid), *[" ".join(c) for c in cmds]), do)]


UNIT = NetemUnit()
