"""Run faults with a user's Pumba binary: the scenario -> argv mapping (a pure function) and its execution.

The intent is journaled exactly as for the Docker executor (with Pumba's own rules as the undo), plus the
Pumba pid, so `tools chaos restore` can stop an orphaned Pumba and revert its fault after a crash.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import docker

from tools.chaos import netem, netfilter
from tools.chaos.config import ChaosConfig
from tools.chaos.docker_executor import DockerExecutor
from tools.chaos.durations import parse_duration
from tools.chaos.journal import Journal
from tools.chaos.outcome import FaultFailed
from tools.chaos.schedule import Action
from tools.chaos.targets import Target
from tools.errors import EXIT_BAD_INPUT, ToolError

PUMBA_ENV = "CHAOSBED_PUMBA_BIN"
GLOBAL_FLAGS = ["--log-level", "info", "--json"]
TERM_GRACE_S = 35  # Pumba's own cleanup timeout is 30 s


class PumbaMappingError(ValueError):
    """The fault cannot be expressed exactly as a Pumba command line."""


def _num(value: float) -> str:
    """Numbers as Pumba's flag parser reads them: 20 not 20.0, 0.3 exactly."""
    return str(int(value)) if float(value).is_integer() else netfilter.probability_text(value)


def _ports(flag: str, ports: list[int]) -> list[str]:
    return [flag, ",".join(str(p) for p in ports)] if ports else []


def pumba_argv(
    action: Action, container_name: str, *, pumba_bin: str, image: str, peer_ips: list[str] | None = None
) -> list[str]:
    """The exact Pumba argv for one action. Raises PumbaMappingError for what Pumba cannot express exactly."""
    kind, params = action.kind, action.fault.params
    head = [pumba_bin, *GLOBAL_FLAGS]
    if kind == "kill":
        # restart_after is chaosbed's: the runner starts the container through the API afterwards.
        return [*head, "kill", "--signal", params["signal"], container_name]
    if kind == "stop":
        restart = ["--restart", "--duration", params["duration"]] if params["restart"] else []
        return [*head, "stop", "--time", str(params["time"]), *restart, container_name]
    if kind == "pause":
        return [*head, "pause", "--duration", params["duration"], container_name]
    if kind == "restart":
        return [*head, "restart", "--timeout", params["timeout"], container_name]
    if kind == "rm":
        flags = [f"--force={str(params['force']).lower()}", f"--volumes={str(params['volumes']).lower()}"]
        return [*head, "rm", *flags, *(["--links"] if params["links"] else []), container_name]
    iface = [] if params["interface"] == "eth0" else ["--interface", params["interface"]]
    if kind == "iptables loss":
        probability = params.get("probability")
        if probability is not None and round(probability, 2) != probability:
            raise PumbaMappingError(
                f"probability {probability!r} has more than 2 decimals and Pumba would round it to "
                f"{probability:.2f}; use the docker executor or a 2-decimal probability"
            )
        proto = [] if params["protocol"] == "any" else ["--protocol", params["protocol"]]
        filters = [x for cidr in params["source"] for x in ("--source", cidr)]
        filters += [x for cidr in params["destination"] for x in ("--destination", cidr)]
        filters += _ports("--src-port", params["src_port"]) + _ports("--dst-port", params["dst_port"])
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
            loss = ["loss", "--probability", _num(params["probability"])]
        return [
            *head, "iptables", "--duration", params["duration"], *iface, *proto,
            "--iptables-image", image, "--pull-image=false", *filters, *loss, container_name,
        ]  # fmt: skip
    if kind == "iptables partition":
        if not peer_ips:
            raise PumbaMappingError("a partition needs the peers' addresses")
        # Pumba OR-s repeated --source values into one DROP rule each: exactly a drop-all from every peer.
        sources = [x for ip in peer_ips for x in ("--source", f"{ip}/32")]
        return [
            *head, "iptables", "--duration", params["duration"], *iface,
            "--iptables-image", image, "--pull-image=false", *sources,
            "loss", "--probability", "1", container_name,
        ]  # fmt: skip
    sub = netem.NETEM_SUBCOMMAND[kind]
    parent = [*head, "netem", "--duration", params["duration"], *iface]
    parent += [x for cidr in params["destination"] for x in ("--target", cidr)]
    parent += _ports("--egress-port", params["egress_port"]) + _ports(
        "--ingress-port", params["ingress_port"]
    )
    parent += ["--tc-image", image, "--pull-image=false"]
    if sub == "delay":
        flags = ["--time", str(params["time"]), "--jitter", str(params["jitter"])]
        flags += ["--correlation", _num(params["correlation"])]
        flags += ["--distribution", params["distribution"]] if params["distribution"] else []
    elif sub == "rate":
        flags = ["--rate", params["rate"], "--packetoverhead", str(params["packetoverhead"])]
        flags += ["--cellsize", str(params["cellsize"]), "--celloverhead", str(params["celloverhead"])]
    else:
        flags = ["--percent", _num(params["percent"]), "--correlation", _num(params["correlation"])]
    return [*parent, sub, *flags, container_name]


def find_pumba(explicit: str | None) -> str:
    """--pumba-bin, then $CHAOSBED_PUMBA_BIN, then `pumba` on PATH; a clear error when there is none."""
    candidate = explicit or os.environ.get(PUMBA_ENV) or shutil.which("pumba")
    if not candidate:
        raise ToolError(
            "--executor pumba needs a Pumba binary: "
            "pass --pumba-bin, set CHAOSBED_PUMBA_BIN or put pumba on PATH",
            EXIT_BAD_INPUT,
        )
    path = Path(candidate)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ToolError(f"Pumba binary {candidate} is not an executable file", EXIT_BAD_INPUT)
    return str(path.resolve())


class PumbaExecutor:
    name = "pumba"

    def __init__(
        self,
        client: docker.DockerClient,
        cfg: ChaosConfig,
        run_id: str,
        pumba_bin: str,
        journal: Journal,
        run_dir: Path,
    ) -> None:
        self.client = client
        self.cfg = cfg
        self.pumba_bin = pumba_bin
        self.journal = journal
        self.run_dir = run_dir
        # Reads, the netem probe and restart_after's start still go through the API.
        self.docker = DockerExecutor(client, cfg, run_id)
        self._argv: dict[str, list[str]] = {}

    def route(self, service: str) -> PumbaExecutor:
        return self

    def find(self, service: str) -> Target | None:
        return self.docker.find(service)

    def argv_for(self, action: Action, target: Target, peer_ips: list[str] | None) -> list[str]:
        try:
            return pumba_argv(
                action,
                target.name,
                pumba_bin=self.pumba_bin,
                image=self.cfg.nettools_image,
                peer_ips=peer_ips,
            )
        except PumbaMappingError as exc:
            raise FaultFailed(f"not expressible in Pumba: {exc}") from None

    def prepare(self, action: Action, target: Target, fault_id: str) -> dict[str, Any]:
        undo = self.docker.prepare(action, target, fault_id)
        params = action.fault.params
        if action.kind == "iptables loss":
            undo.update(rules=netfilter.loss_rules(params, None), comment=None)
        elif action.kind == "iptables partition":
            undo.update(
                rules=netfilter.pumba_partition_rules(params["interface"], undo["peer_ips"]), comment=None
            )
        self._argv[fault_id] = self.argv_for(action, target, undo.get("peer_ips"))
        return undo

    def call(self, fault_id: str) -> list[str] | None:
        return self._argv.get(fault_id)

    def hold_ms(self, action: Action) -> int | None:
        """Pumba itself waits out the fault; only chaosbed's extensions hold after it exits."""
        params = action.fault.params
        if action.kind == "kill":
            return parse_duration(params["restart_after"]) if "restart_after" in params else None
        if action.kind == "stop" and not params["restart"]:
            return None
        return 0

    def apply(
        self,
        action: Action,
        target: Target,
        fault_id: str,
        undo: dict[str, Any],
        calls: list[str],
        stop: threading.Event,
    ) -> None:
        argv = self._argv[fault_id]
        log_path = self.run_dir / f"pumba-{action.short_id}.log"
        with log_path.open("ab") as log:
            # Own session: a terminal's Ctrl-C reaches us only, and we decide when Pumba gets SIGTERM.
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
            self.journal.pumba(fault_id, proc.pid, argv)
            calls.append(f"exec pumba pid={proc.pid}")
            while proc.poll() is None:
                if stop.wait(0.1):
                    proc.send_signal(signal.SIGTERM)  # Pumba reverts its fault on SIGTERM
                    calls.append(f"SIGTERM pumba pid={proc.pid}")
                    try:
                        proc.wait(TERM_GRACE_S)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                    break
        if proc.returncode != 0 and not stop.is_set():
            raise FaultFailed(f"pumba exited {proc.returncode}: {_last_message(log_path)}")


def _last_message(log_path: Path) -> str:
    lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    for raw in reversed(lines):
        try:
            return str(json.loads(raw).get("msg", raw))
        except (json.JSONDecodeError, AttributeError):
            return raw
    return "no output"
