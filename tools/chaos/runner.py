"""Run a schedule in real time: each action in its own thread at its offset, overlapping ones concurrently.

Per action: resolve the target, journal the intent (fsync), apply, wait, undo, write the timeline line,
journal `undone`. A stop event (SIGINT/SIGTERM, or any exception in the runner) cuts every wait short so
each active fault is undone at once, and a final restore pass always runs (try/finally) for faults held
until the end of the phase and for anything a failed thread left open.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import docker

from tools.chaos.config import ChaosConfig
from tools.chaos.journal import Journal, now_ms
from tools.chaos.outcome import INTERRUPTED, OK, FaultFailed, FaultOutcome, NotApplicable, TargetVanished
from tools.chaos.restore import RestoreReport, restore_run
from tools.chaos.schedule import Action, Schedule
from tools.chaos.targets import Target
from tools.chaos.triggers import TriggerContext, TriggerError, is_dynamic
from tools.chaos.undo import undo
from tools.metrics.injector import FaultGauge
from tools.run.timeline import Timeline, line

JOIN_POLL_S = 0.2


class Executor(Protocol):
    name: str

    def route(self, service: str) -> Executor:
        """The executor that handles this service (a routed executor picks per service)."""
        ...

    def find(self, service: str) -> Target | None: ...

    def prepare(self, action: Action, target: Target, fault_id: str) -> dict[str, Any]: ...

    def apply(
        self,
        action: Action,
        target: Target,
        fault_id: str,
        undo: dict[str, Any],
        calls: list[str],
        stop: threading.Event,
    ) -> None: ...

    def hold_ms(self, action: Action) -> int | None: ...

    def call(self, fault_id: str) -> list[str] | None: ...

    def plan(self, action: Action, fault_id: str) -> tuple[str, list[str]]:
        """`run --dry-run`: the target's name and the lines of the steps the run would take."""
        ...


class Runner:
    def __init__(
        self,
        client: docker.DockerClient,
        cfg: ChaosConfig,
        schedule: Schedule,
        executor: Executor,
        run_dir: Path,
        run_id: str,
        journal: Journal,
        triggers: TriggerContext | None = None,
        faults_active: FaultGauge | None = None,
    ) -> None:
        self.client = client
        self.faults_active = faults_active  # chaosbed_fault_active, when served
        self.triggers = triggers
        self.t0 = time.monotonic()
        self.cfg = cfg
        self.schedule = schedule
        self.executor = executor
        self.run_dir = run_dir
        self.run_id = run_id
        self.journal = journal
        self.timeline = Timeline(run_dir)
        self.stop = threading.Event()
        self.interrupted_by: int | None = None
        self.calls: dict[str, list[str]] = {}
        self.started: list[str] = []
        self.final_restore: RestoreReport | None = None
        self._threads: list[threading.Thread] = []

    def interrupt(self, signum: int) -> None:
        """Called from the signal handler: only sets flags, the threads do the undoing."""
        if self.interrupted_by is None:
            self.interrupted_by = signum
        self.stop.set()

    def run(self) -> None:
        self.journal.run_start(self.run_id, self.schedule.name, self.executor.name)
        t0 = self.t0 = time.monotonic()
        finished = False
        try:
            for action in self.schedule.actions:
                # A not-applicable fault after the phase's end (deployment.gate) is recorded at the end.
                due_ms = min(action.at_ms, self.schedule.phase_ms) if action.not_applicable else action.at_ms
                if self.stop.wait(max(0.0, t0 + due_ms / 1000 - time.monotonic())):
                    break
                thread = threading.Thread(
                    target=self._execute, args=(action,), name=action.short_id, daemon=True
                )
                self.started.append(action.short_id)
                thread.start()
                self._threads.append(thread)
            # Faults without their own end are held until the phase ends.
            self.stop.wait(max(0.0, t0 + self.schedule.phase_ms / 1000 - time.monotonic()))
            self._join()
            finished = True
        finally:
            if not finished:
                self.stop.set()
                self._join()
            held_outcome = INTERRUPTED if self.stop.is_set() else OK
            self.final_restore = restore_run(
                self.client, self.cfg, self.run_dir, outcome=held_outcome, calls_by_fault=self.calls
            )
            if self.faults_active is not None:
                self.faults_active.clear()

    def _join(self) -> None:
        # Short joins keep the main thread responsive to signals.
        for thread in self._threads:
            while thread.is_alive():
                thread.join(JOIN_POLL_S)

    def _await_trigger(self, action: Action, record: dict[str, Any]) -> bool:
        """Wait for the fault's event (from `at` until `at + within`) and its delay; False when stopped."""
        trigger = action.fault.trigger
        if trigger is None:
            return True
        if self.triggers is None:
            raise FaultFailed("this run has no trigger context (PostgreSQL DSN, brokers)")
        watcher = self.triggers.watcher(trigger.event)
        try:
            watcher.arm()
            deadline = self.t0 + (action.at_ms + trigger.within_ms) / 1000
            fired = watcher.wait(deadline, self.stop)
        except TriggerError as exc:
            raise FaultFailed(f"trigger {trigger.event}: {exc}") from None
        finally:
            watcher.close()
        if fired is None:
            if self.stop.is_set():
                return False
            raise FaultFailed(f"no {trigger.event} event within {trigger.as_dict()['within']} of its 'at'")
        delay = trigger.draw_delay(self.schedule.seed, action.fault.index, action.service)
        record.update(event=trigger.event, event_ms=fired.event_ms, seen=fired.detail, delay_ms=delay)
        return not (delay and self.stop.wait(delay / 1000))

    def _execute(self, action: Action) -> None:
        fault_id = action.fault_id(self.run_id)
        calls = self.calls.setdefault(fault_id, [])
        start = now_ms()
        target: Target | None = None
        trig: dict[str, Any] = {}
        rule = action.service if is_dynamic(action.service) else None
        executor = self.executor.route(action.service)
        try:
            if action.not_applicable:  # another Spark deployment's fault: nothing to wait for or to do
                raise NotApplicable(action.not_applicable)
            if rule is None and action.fault.trigger is not None:
                target = executor.find(action.service)  # found before the event: less to do after it
            if not self._await_trigger(action, trig):
                return  # stopped while waiting: nothing was applied
            if rule is not None:
                if self.triggers is None:
                    raise FaultFailed(f"{rule}: this run has no trigger context (brokers)")
                try:
                    service, how = self.triggers.resolve(rule)
                except TriggerError as exc:
                    raise FaultFailed(f"{rule}: {exc}") from None
                action = replace(action, service=service)
                trig.update(target_rule=rule, resolved=how)
                executor = self.executor.route(service)
            if target is None:
                target = executor.find(action.service)
            if target is None:
                raise TargetVanished(f"no container or unit for service {action.service!r} any more")
            spec = executor.prepare(action, target, fault_id)
            calls += spec.get("notes", [])  # what the unit wants on the record (e.g. a peer that was down)
        except FaultOutcome as exc:
            self._write(action, fault_id, target, calls, start, exc.outcome, exc.detail, trig)
            return
        except Exception as exc:  # a bug or an engine error: record it, never kill the run
            self._write(action, fault_id, target, calls, start, f"failed: {exc}", repr(exc), trig)
            return
        if self.stop.is_set():
            return  # interrupted while preparing: never apply a fault we would undo at once
        start = now_ms()
        self.journal.intent(
            {
                "fault_id": fault_id,
                "kind": action.kind,
                "name": action.fault.name,
                "target": action.service,
                "container_id": target.container_id,
                "container": target.name,
                "params": action.fault.params,
                "executor": executor.name,
                "call": executor.call(fault_id) or [],
                "start_ms": start,
                "undo": spec,
            }
        )
        self._active(action, True)
        outcome, detail = OK, ""
        if "event_ms" in trig:
            trig["fire_ms"] = now_ms()
            trig["latency_ms"] = trig["fire_ms"] - trig["event_ms"]
        try:
            executor.apply(action, target, fault_id, spec, calls, self.stop)
            self.journal.applied(fault_id, list(calls))
            hold = executor.hold_ms(action)
            if hold is None:
                return  # held: the final restore pass reverts it and writes its line
            if self.stop.wait(hold / 1000):
                outcome = INTERRUPTED
        except FaultOutcome as exc:
            outcome, detail = exc.outcome, exc.detail
        except Exception as exc:
            outcome, detail = f"failed: {exc}", repr(exc)
        if self.stop.is_set() and outcome == OK:
            outcome = INTERRUPTED
        try:
            # Also after a failed apply: a half-applied fault is reverted before we move on.
            undo(self.client, self.cfg, spec, run_id=self.run_id, fault_id=fault_id, calls=calls)
        except TargetVanished as exc:
            outcome, detail = TargetVanished.outcome, exc.detail
        except FaultFailed as exc:
            # Left open in the journal: the final restore pass (or `tools chaos restore`) retries it.
            self._write(
                action, fault_id, target, calls, start, f"failed: undo: {exc.detail}", exc.detail, trig
            )
            return
        self._active(action, False)
        end = self._write(action, fault_id, target, calls, start, outcome, detail, trig)
        self.journal.undone(fault_id, outcome, end)

    def _active(self, action: Action, active: bool) -> None:
        if self.faults_active is not None:
            self.faults_active.set(action.fault.name, action.kind, action.service, active)

    def _write(
        self,
        action: Action,
        fault_id: str,
        target: Target | None,
        calls: list[str],
        start: int,
        outcome: str,
        detail: str,
        trig: dict[str, Any] | None = None,
    ) -> int:
        end = now_ms()
        extra: dict[str, Any] = {"name": action.fault.name, "at_ms": action.at_ms}
        if action.fault.trigger is not None or trig:
            # When and whom: the event's and the fire's times (ms since the epoch), a dynamic target's rule.
            extra["trigger"] = {"after": action.fault.trigger.describe() if action.fault.trigger else None}
            extra["trigger"].update(trig or {})
        executor = self.executor.route(action.service)
        pumba_argv = executor.call(fault_id)
        if pumba_argv is not None:
            extra["api_calls"] = list(calls)
        if detail:
            extra["detail"] = detail
        self.timeline.append(
            line(
                fault_id=fault_id,
                kind=action.kind,
                target=action.service,
                container=target.name if target else "",
                params=action.fault.params,
                executor=executor.name,
                call=pumba_argv if pumba_argv is not None else list(calls),
                start_ms=start,
                end_ms=end,
                outcome=outcome,
                **extra,
            )
        )
        return end
