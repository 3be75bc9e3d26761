"""The docker executor: a loop over its units (tools/chaos/docker/<family>.py); it knows no kind."""

from __future__ import annotations

import threading
from typing import Any

import docker

from tools.chaos import targets
from tools.chaos.config import ChaosConfig
from tools.chaos.docker import unit_for
from tools.chaos.docker.engine import Engine
from tools.chaos.outcome import FaultOutcome
from tools.chaos.plan import FaultPlan, dry_run_lines, run_steps
from tools.chaos.schedule import Action
from tools.chaos.targets import Target


class DockerExecutor:
    name = "docker"

    def __init__(self, client: docker.DockerClient, cfg: ChaosConfig, run_id: str) -> None:
        self.client = client
        self.cfg = cfg
        self.run_id = run_id
        self.engine = Engine(client, cfg, run_id)

    def route(self, service: str) -> DockerExecutor:
        return self

    def find(self, service: str) -> Target | None:
        return targets.find(self.client, self.cfg, service)

    def prepare(self, action: Action, target: Target, fault_id: str) -> dict[str, Any]:
        """Before the intent is journaled: the unit's checks, then the undo spec to journal.
        Raises Unsupported/FaultFailed when the fault cannot be applied here."""
        unit = unit_for(action.kind)
        run_steps(unit.checks(self.engine, action, target, fault_id), [])
        return unit.undo_spec(self.engine, action, target, fault_id)

    def hold_ms(self, action: Action) -> int | None:
        return action.fault.hold_ms

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
        steps = unit_for(action.kind).apply(self.engine, action, target, fault_id, undo)
        run_steps(steps, calls, stop)

    def plan(self, action: Action, fault_id: str) -> tuple[str, list[str]]:
        """`run --dry-run`: the target's name and the lines of the steps the run would take."""
        target = targets.require(self.client, self.cfg, action.service)
        unit = unit_for(action.kind)
        checks = unit.checks(self.engine, action, target, fault_id)
        try:
            spec = unit.undo_spec(self.engine, action, target, fault_id)
        except FaultOutcome as exc:
            return target.name, [*(line for step in checks for line in step.shows), f"refused: {exc.detail}"]
        plan = FaultPlan(
            checks,
            unit.apply(self.engine, action, target, fault_id, spec),
            unit.undo(self.engine, spec, fault_id),
        )
        return target.name, dry_run_lines(plan, self.hold_ms(action))
