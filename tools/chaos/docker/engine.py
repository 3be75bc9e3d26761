"""The Docker executor's one door to the engine: API calls recorded as they are made, container state,
sidecars. Every docker unit, and every undo after a crash, goes through it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import docker
from docker.errors import APIError, NotFound

from tools.chaos.config import ChaosConfig
from tools.chaos.outcome import FaultFailed, TargetVanished
from tools.chaos.plan import Step
from tools.chaos.sidecar import Sidecar

T = TypeVar("T")


class Engine:
    def __init__(self, client: docker.DockerClient, cfg: ChaosConfig, run_id: str) -> None:
        self.client = client
        self.cfg = cfg
        self.run_id = run_id
        self._lock = threading.Lock()
        self._memo: dict[str, Any] = {}

    def inspect(self, cid: str) -> dict[str, Any]:
        try:
            return self.client.api.inspect_container(cid)
        except NotFound:
            raise TargetVanished(f"container {cid[:12]} no longer exists") from None

    def state(self, cid: str) -> dict[str, Any]:
        return self.inspect(cid)["State"]

    def call(self, calls: list[str], call: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Record `call` (as the timeline shows it), then make it; engine errors become fault outcomes."""
        calls.append(call)
        try:
            return func(*args, **kwargs)
        except NotFound:
            raise TargetVanished(f"container vanished during {call}") from None
        except APIError as exc:
            raise FaultFailed(f"{call}: {exc.explanation or exc}") from None

    def api_step(self, call: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Step:
        """One API call as a step: the dry run prints exactly what the timeline will record."""
        return Step((call,), lambda calls, _stop: self.call(calls, call, func, *args, **kwargs))

    def sidecar(self, fault_id: str, target_id: str | None, calls: list[str]) -> Sidecar:
        return Sidecar(
            self.client, self.cfg, run_id=self.run_id, fault_id=fault_id, target_id=target_id, calls=calls
        )

    def once(self, key: str, compute: Callable[[], T]) -> T:
        """compute() once per run (e.g. a kernel probe), whichever fault asks first."""
        with self._lock:
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]


def sidecar_line(cid: str) -> str:
    """How the dry run shows a sidecar in the target's network namespace."""
    return f"sidecar network_mode=container:{cid[:12]} cap_add=NET_ADMIN"


def require_running(engine: Engine, cid: str, name: str) -> dict[str, Any]:
    state = engine.state(cid)
    if not state.get("Running"):
        raise FaultFailed(f"{name} is {state.get('Status')}, not running")
    return state


def refuse_host_netns(engine: Engine, cid: str, name: str) -> None:
    if engine.inspect(cid)["HostConfig"].get("NetworkMode") == "host":
        raise FaultFailed(f"{name} uses the host's network namespace: refusing to change host rules")


def network_checks(engine: Engine, cid: str, name: str) -> Step:
    """Before a network fault: the target runs, in a namespace of its own (never the host's)."""

    def check(calls: list[str], stop: threading.Event) -> None:
        require_running(engine, cid, name)
        refuse_host_netns(engine, cid, name)

    return Step((), check)


def skip_if_stopped(engine: Engine, cid: str, calls: list[str]) -> bool:
    """Undo of a network fault: a stopped container's netns is gone, and with it our rules and qdiscs."""
    if engine.state(cid).get("Running"):
        return False
    calls.append(f"skip: {cid[:12]} not running, its network namespace (and our rules) are gone")
    return True
