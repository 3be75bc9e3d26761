"""Apply faults through the Docker Engine API with Pumba's semantics (the default executor)."""

from __future__ import annotations

import threading
import time
from typing import Any

import docker
from docker.errors import APIError, NotFound

from tools.chaos import netem, netfilter, targets
from tools.chaos.config import ChaosConfig, rule_comment
from tools.chaos.durations import parse_duration
from tools.chaos.faults import LIFECYCLE_KINDS
from tools.chaos.outcome import FaultFailed, TargetVanished, Unsupported
from tools.chaos.rules import insert_rules
from tools.chaos.schedule import Action
from tools.chaos.sidecar import Sidecar
from tools.chaos.targets import Target

# Pumba reads a container's stop signal from this label, not from the image (lifecycle/stop.go).
PUMBA_STOP_SIGNAL_LABEL = "com.gaiaadm.pumba.stop-signal"
POLL_S = 0.1
# On cgroup v1 runc gives up freezing a container whose tasks sit in uninterruptible I/O (a broker
# flushing its log), thaws it back and Docker answers "unable to freeze"; a new attempt usually works.
FREEZE_FAILED = "unable to freeze"
PAUSE_ATTEMPTS = 10
PAUSE_RETRY_S = 0.05


def hold_ms(action: Action) -> int | None:
    """How long the fault stays applied before its undo; None = until the end of the chaos phase."""
    params = action.fault.params
    kind = action.kind
    if kind == "kill":
        return parse_duration(params["restart_after"]) if "restart_after" in params else None
    if kind == "stop":
        return parse_duration(params["duration"]) if params["restart"] else None
    if kind in ("restart", "rm"):
        return 0
    return action.fault.duration_ms


def _shares_host_netns(client: docker.DockerClient, cid: str) -> bool:
    try:
        return client.api.inspect_container(cid)["HostConfig"].get("NetworkMode") == "host"
    except NotFound:
        raise TargetVanished(f"container {cid[:12]} no longer exists") from None


def _api(calls: list[str], call: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    calls.append(call)
    try:
        return func(*args, **kwargs)
    except NotFound:
        raise TargetVanished(f"container vanished during {call}") from None
    except APIError as exc:
        raise FaultFailed(f"{call}: {exc.explanation or exc}") from None


class DockerExecutor:
    name = "docker"

    def __init__(self, client: docker.DockerClient, cfg: ChaosConfig, run_id: str) -> None:
        self.client = client
        self.cfg = cfg
        self.run_id = run_id
        self._netem_lock = threading.Lock()
        self._netem_support: dict[bool, str | None] = {}  # needs prio -> None if supported, else why not

    def route(self, service: str) -> DockerExecutor:
        return self

    def find(self, service: str) -> Target | None:
        return targets.find(self.client, self.cfg, service)

    # --- before the intent is journaled: read-only (plus the throwaway netem probe) ------------------

    def prepare(self, action: Action, target: Target, fault_id: str) -> dict[str, Any]:
        """The undo spec to journal. Raises Unsupported/FaultFailed when the fault cannot be applied here."""
        kind, params, cid = action.kind, action.fault.params, target.container_id
        state = self._state(cid)
        if kind != "rm" and not state.get("Running"):
            raise FaultFailed(f"{target.name} is {state.get('Status')}, not running")
        if kind not in LIFECYCLE_KINDS and _shares_host_netns(self.client, cid):
            raise FaultFailed(
                f"{target.name} uses the host's network namespace: refusing to change host rules"
            )
        if kind == "pause":
            if state.get("Paused"):
                # Someone else's pause (or another fault's): failing here journals no undo that would
                # unpause it early.
                raise FaultFailed(f"{target.name} is already paused")
            return {"op": "unpause", "container_id": cid}
        if kind in ("kill", "stop", "restart"):
            return {"op": "start", "container_id": cid}
        if kind == "rm":
            return {"op": "none", "container_id": cid}
        if kind == "iptables loss":
            comment = rule_comment(fault_id)
            return {
                "op": "iptables",
                "container_id": cid,
                "comment": comment,
                "rules": netfilter.loss_rules(params, comment),
            }
        if kind == "iptables partition":
            comment = rule_comment(fault_id)
            ips, missing = self.peer_ips(params["peers"])
            rules = netfilter.partition_rules(params["interface"], ips, comment)
            spec = {
                "op": "iptables",
                "container_id": cid,
                "comment": comment,
                "rules": rules,
                "peer_ips": ips,
            }
            return spec | ({"peers_missing": missing} if missing else {})
        self.check_netem(netem.has_filters(params), fault_id)
        return {"op": "tc", "container_id": cid, "dev": params["interface"], "cmds": netem.undo_cmds(params)}

    def peer_ips(self, peers: list[str]) -> tuple[list[str], list[str]]:
        """The peers' addresses now. A peer that is down has none (and nothing to cut off): it is skipped
        and reported, unless no peer has an address at all."""
        ips: list[str] = []
        missing: list[str] = []
        for service in peers:
            peer = targets.find(self.client, self.cfg, service)
            found = targets.ipv4_addresses(self.client, peer.container_id) if peer else []
            if not found:
                missing.append(service)
            ips += [ip for ip in found if ip not in ips]
        if not ips:
            raise FaultFailed(f"no peer has an IPv4 address (all down or missing: {', '.join(missing)})")
        return ips, missing

    def check_netem(self, needs_prio: bool, fault_id: str) -> None:
        """Probe once per run, in a namespace of its own, whether this kernel can do netem (and prio)."""
        with self._netem_lock:
            if needs_prio not in self._netem_support:
                self._netem_support[needs_prio] = self._probe(needs_prio, fault_id)
        why = self._netem_support[needs_prio]
        if why is not None:
            raise Unsupported(why)

    def _probe(self, needs_prio: bool, fault_id: str) -> str | None:
        probes = netem.PROBE_NETEM + (netem.PROBE_PRIO if needs_prio else [])
        calls: list[str] = []
        with Sidecar(
            self.client, self.cfg, run_id=self.run_id, fault_id=fault_id, target_id=None, calls=calls
        ) as sc:
            for cmd in probes:
                result = sc.run(cmd, check=False)
                if result.exit_code != 0:
                    qdisc = "sch_prio" if "prio" in cmd else "sch_netem"
                    said = result.stderr.strip() or f"exit {result.exit_code}"
                    return f"no {qdisc} on this host: `{' '.join(cmd)}` said {said}"
                sc.run(netem.PROBE_UNDO, check=False)
        return None

    # --- after the intent is journaled ------------------------------------------------------------

    def hold_ms(self, action: Action) -> int | None:
        return hold_ms(action)

    def call(self, fault_id: str) -> list[str] | None:
        """The Docker executor's call is the list of API calls it made (kept by the runner)."""
        return None

    def apply(
        self,
        action: Action,
        target: Target,
        fault_id: str,
        undo: dict[str, Any],
        calls: list[str],
        stop: threading.Event,
    ) -> None:
        kind, params, cid = action.kind, action.fault.params, target.container_id
        short = cid[:12]
        if kind == "kill":
            _api(
                calls,
                f"POST /containers/{short}/kill?signal={params['signal']}",
                self.client.api.kill,
                cid,
                params["signal"],
            )
        elif kind == "stop":
            self._stop(cid, params["time"], calls)
        elif kind == "pause":
            self._pause(cid, calls, stop)
        elif kind == "restart":
            t = params["timeout_s"]
            _api(calls, f"POST /containers/{short}/restart?t={t}", self.client.api.restart, cid, timeout=t)
        elif kind == "rm":
            flags = f"force={int(params['force'])}&v={int(params['volumes'])}&link={int(params['links'])}"
            _api(
                calls,
                f"DELETE /containers/{short}?{flags}",
                self.client.api.remove_container,
                cid,
                v=params["volumes"],
                link=params["links"],
                force=params["force"],
            )
        elif kind.startswith("iptables"):
            self._iptables(cid, fault_id, undo["rules"], calls)
        else:
            self._netem(
                cid, fault_id, params["interface"], netem.apply_cmds(kind, params), undo["cmds"], calls
            )

    def _state(self, cid: str) -> dict[str, Any]:
        try:
            return self.client.api.inspect_container(cid)["State"]
        except NotFound:
            raise TargetVanished(f"container {cid[:12]} no longer exists") from None

    def _wait_stopped(self, cid: str, seconds: int) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self._state(cid).get("Running"):
                return True
            time.sleep(POLL_S)
        return not self._state(cid).get("Running")

    def _stop(self, cid: str, seconds: int, calls: list[str]) -> None:
        """Pumba's stop: signal, poll every 100 ms for `time` s, then SIGKILL and poll again."""
        try:
            labels = self.client.api.inspect_container(cid)["Config"].get("Labels") or {}
        except NotFound:
            raise TargetVanished(f"container {cid[:12]} no longer exists") from None
        signal = labels.get(PUMBA_STOP_SIGNAL_LABEL, "SIGTERM")
        _api(calls, f"POST /containers/{cid[:12]}/kill?signal={signal}", self.client.api.kill, cid, signal)
        if self._wait_stopped(cid, seconds):
            return
        calls.append(f"not stopped after {seconds}s: SIGKILL")
        _api(calls, f"POST /containers/{cid[:12]}/kill?signal=SIGKILL", self.client.api.kill, cid, "SIGKILL")
        if not self._wait_stopped(cid, seconds):
            raise FaultFailed(f"container {cid[:12]} still running {seconds}s after SIGKILL")

    def _pause(self, cid: str, calls: list[str], stop: threading.Event) -> None:
        """Docker's pause, retried while runc reports it could not freeze (and thawed the container)."""
        call = f"POST /containers/{cid[:12]}/pause"
        for attempt in range(1, PAUSE_ATTEMPTS + 1):
            try:
                _api(calls, call, self.client.api.pause, cid)
                return
            except FaultFailed as exc:
                if FREEZE_FAILED not in exc.detail or attempt == PAUSE_ATTEMPTS or stop.is_set():
                    raise
                calls[-1] = f"{call}: {FREEZE_FAILED} (attempt {attempt}), retried"
            time.sleep(PAUSE_RETRY_S)

    def _iptables(self, cid: str, fault_id: str, rules: list[list[str]], calls: list[str]) -> None:
        with Sidecar(
            self.client, self.cfg, run_id=self.run_id, fault_id=fault_id, target_id=cid, calls=calls
        ) as sc:
            insert_rules(sc, rules)

    def _netem(
        self,
        cid: str,
        fault_id: str,
        dev: str,
        cmds: list[list[str]],
        undo: list[list[str]],
        calls: list[str],
    ) -> None:
        with Sidecar(
            self.client, self.cfg, run_id=self.run_id, fault_id=fault_id, target_id=cid, calls=calls
        ) as sc:
            root = sc.run(netem.show_root_cmd(dev)).stdout.strip()
            if not netem.root_is_default(root):
                # Someone's own qdisc: Pumba fails with "File exists"; we refuse and leave it alone.
                raise FaultFailed(f"{dev} already has a root qdisc ({root}); refusing to replace it")
            root_added = False
            try:
                for cmd in cmds:
                    sc.run(cmd)
                    root_added = True
            except FaultFailed:
                # Pumba leaves a half-built prio tree here; deleting our root removes all of it.
                if root_added:
                    for cmd in undo:
                        sc.run(cmd, check=False)
                raise
