"""Revert one fault from its journaled undo spec: a loop over the executors' units, picked by the spec's
"op" (each unit lists the ops it reverts, beside the code that wrote them). Every step checks the live
state first, so running an undo twice, or after a crash at any instant of the apply, is safe."""

from __future__ import annotations

from typing import Any

import docker

from tools.chaos import docker as docker_units
from tools.chaos import systemd as systemd_units
from tools.chaos.config import ChaosConfig
from tools.chaos.docker.engine import Engine
from tools.chaos.outcome import FaultFailed
from tools.chaos.plan import Step, run_steps


def undo_steps(engine: Engine, spec: dict[str, Any], fault_id: str) -> list[Step]:
    op = spec.get("op")
    if "host" in spec and op in systemd_units.BY_UNDO_OP:
        return systemd_units.BY_UNDO_OP[op].undo(spec)
    if op in docker_units.BY_UNDO_OP:
        return docker_units.BY_UNDO_OP[op].undo(engine, spec, fault_id)
    raise FaultFailed(f"unknown undo op {op!r} in the journal")


def undo(
    client: docker.DockerClient,
    cfg: ChaosConfig,
    spec: dict[str, Any],
    *,
    run_id: str,
    fault_id: str,
    calls: list[str],
) -> None:
    """Revert; raises TargetVanished when the target is gone, FaultFailed when the engine or host refuses."""
    run_steps(undo_steps(Engine(client, cfg, run_id), spec, fault_id), calls)
