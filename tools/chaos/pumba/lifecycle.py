"""Pumba unit for kill, stop, pause, restart and rm (Pumba's pkg/chaos/lifecycle)."""

from __future__ import annotations

from typing import Any

from tools.chaos.durations import parse_duration
from tools.chaos.faults import FaultSpec


class LifecycleUnit:
    kinds = ("kill", "stop", "pause", "restart", "rm")

    def argv(
        self, fault: FaultSpec, container_name: str, *, image: str, peer_ips: list[str] | None
    ) -> list[str]:
        kind, params = fault.kind, fault.params
        if kind == "kill":
            # restart_after is chaosbed's: the runner starts the container through the API afterwards.
            return ["kill", "--signal", params["signal"], container_name]
        if kind == "stop":
            restart = ["--restart", "--duration", params["duration"]] if params["restart"] else []
            return ["stop", "--time", str(params["time"]), *restart, container_name]
        if kind == "pause":
            return ["pause", "--duration", params["duration"], container_name]
        if kind == "restart":
            return ["restart", "--timeout", params["timeout"], container_name]
        flags = [f"--force={str(params['force']).lower()}", f"--volumes={str(params['volumes']).lower()}"]
        return ["rm", *flags, *(["--links"] if params["links"] else []), container_name]

    def undo_spec(self, fault: FaultSpec, docker_spec: dict[str, Any]) -> dict[str, Any]:
        return docker_spec

    def hold_ms(self, fault: FaultSpec) -> int | None:
        params = fault.params
        if fault.kind == "kill":
            return parse_duration(params["restart_after"]) if "restart_after" in params else None
        if fault.kind == "stop" and not params["restart"]:
            return None
        return 0


UNIT = LifecycleUnit()
