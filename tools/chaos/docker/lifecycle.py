"""Docker unit for kill, stop, pause, restart and rm: Docker Engine API calls with Pumba's semantics."""

from __future__ import annotations

import threading
import time
from typing import Any

from tools.chaos.docker.engine import Engine, require_running
from tools.chaos.outcome import FaultFailed
from tools.chaos.plan import Step
from tools.chaos.schedule import Action
from tools.chaos.targets import Target

# Pumba reads a container's stop signal from this label, not from the image (lifecycle/stop.go).
PUMBA_STOP_SIGNAL_LABEL = "com.gaiaadm.pumba.stop-signal"
POLL_S = 0.1
# On cgroup v1 runc gives up freezing a container whose tasks sit in uninterruptible I/O (a broker
# flushing its log), thaws it back and Docker answers "unable to freeze"; a new attempt usually works.
FREEZE_FAILED = "unable to freeze"
PAUSE_ATTEMPTS = 10
PAUSE_RETRY_S = 0.05

# Undo ops, as written in the journal's intent records (each also carries "container_id"):
#   {"op": "start"}     start the container if chaos left it stopped (stop, kill, restart)
#   {"op": "unpause"}   unpause it if it is paused (pause)
#   {"op": "none"}      nothing can be undone (rm)
UNDO_OP = {"kill": "start", "stop": "start", "restart": "start", "pause": "unpause", "rm": "none"}


def _checks(engine: Engine, action: Action, target: Target) -> None:
    cid = target.container_id
    if action.kind == "rm":
        engine.state(cid)  # it must still exist; it may be stopped
        return
    state = require_running(engine, cid, target.name)
    if action.kind == "pause" and state.get("Paused"):
        # Someone else's pause (or another fault's): failing here journals no undo that would
        # unpause it early.
        raise FaultFailed(f"{target.name} is already paused")


def _wait_stopped(engine: Engine, cid: str, seconds: int) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not engine.state(cid).get("Running"):
            return True
        time.sleep(POLL_S)
    return not engine.state(cid).get("Running")


def _stop(engine: Engine, cid: str, seconds: int) -> Step:
    """Pumba's stop: signal, poll every 100 ms for `time` s, then SIGKILL and poll again."""

    def do(calls: list[str], _stop: threading.Event) -> None:
        labels = engine.inspect(cid)["Config"].get("Labels") or {}
        signal = labels.get(PUMBA_STOP_SIGNAL_LABEL, "SIGTERM")
        kill = engine.client.api.kill
        engine.call(calls, f"POST /containers/{cid[:12]}/kill?signal={signal}", kill, cid, signal)
        if _wait_stopped(engine, cid, seconds):
            return
        calls.append(f"not stopped after {seconds}s: SIGKILL")
        engine.call(calls, f"POST /containers/{cid[:12]}/kill?signal=SIGKILL", kill, cid, "SIGKILL")
        if not _wait_stopped(engine, cid, seconds):
            raise FaultFailed(f"container {cid[:12]} still running {seconds}s after SIGKILL")

    shows = (
        f"POST /containers/{cid[:12]}/kill?signal=SIGTERM (or the pumba stop-signal label)",
        f"poll every 100ms for {seconds}s, then SIGKILL",
    )
    return Step(shows, do)


def _pause(engine: Engine, cid: str) -> Step:
    """Docker's pause, retried while runc reports it could not freeze (and thawed the container)."""
    call = f"POST /containers/{cid[:12]}/pause"

    def do(calls: list[str], stop: threading.Event) -> None:
        for attempt in range(1, PAUSE_ATTEMPTS + 1):
            try:
                engine.call(calls, call, engine.client.api.pause, cid)
                return
            except FaultFailed as exc:
                if FREEZE_FAILED not in exc.detail or attempt == PAUSE_ATTEMPTS or stop.is_set():
                    raise
                calls[-1] = f"{call}: {FREEZE_FAILED} (attempt {attempt}), retried"
            time.sleep(PAUSE_RETRY_S)

    return Step((call,), do)


class LifecycleUnit:
    kinds = ("kill", "stop", "pause", "restart", "rm")
    undo_ops = ("start", "unpause", "none")

    def checks(self, engine: Engine, action: Action, target: Target, fault_id: str) -> list[Step]:
        return [Step((), lambda calls, stop: _checks(engine, action, target))]

    def undo_spec(self, engine: Engine, action: Action, target: Target, fault_id: str) -> dict[str, Any]:
        return {"op": UNDO_OP[action.kind], "container_id": target.container_id}

    def apply(
        self, engine: Engine, action: Action, target: Target, fault_id: str, spec: dict[str, Any]
    ) -> list[Step]:
        kind, params, cid = action.kind, action.fault.params, target.container_id
        short, api = cid[:12], engine.client.api
        if kind == "kill":
            signal = params["signal"]
            return [engine.api_step(f"POST /containers/{short}/kill?signal={signal}", api.kill, cid, signal)]
        if kind == "stop":
            return [_stop(engine, cid, params["time"])]
        if kind == "pause":
            return [_pause(engine, cid)]
        if kind == "restart":
            t = params["timeout_s"]
            return [engine.api_step(f"POST /containers/{short}/restart?t={t}", api.restart, cid, timeout=t)]
        flags = f"force={int(params['force'])}&v={int(params['volumes'])}&link={int(params['links'])}"
        remove = api.remove_container
        return [
            engine.api_step(
                f"DELETE /containers/{short}?{flags}",
                remove,
                cid,
                v=params["volumes"],
                link=params["links"],
                force=params["force"],
            )
        ]

    def undo(self, engine: Engine, spec: dict[str, Any], fault_id: str) -> list[Step]:
        op, cid = spec["op"], spec.get("container_id", "")
        if op == "none":
            return []
        short, api = cid[:12], engine.client.api
        unpause, start = f"POST /containers/{short}/unpause", f"POST /containers/{short}/start"

        def do(calls: list[str], _stop: threading.Event) -> None:
            state = engine.state(cid)
            # Never leave a container frozen, whoever paused it during the fault.
            if state.get("Paused"):
                engine.call(calls, unpause, api.unpause, cid)
            if op == "start" and not state.get("Running"):
                engine.call(calls, start, api.start, cid)

        # Shown as the call that reverts the fault; the state checks make each a no-op when not needed.
        return [Step((unpause if op == "unpause" else start,), do)]


UNIT = LifecycleUnit()
