"""Pumba unit for the stress kind (Pumba's pkg/chaos/stress): `pumba stress` with chaosbed's image."""

from __future__ import annotations

from typing import Any

from tools.chaos.config import ChaosConfig
from tools.chaos.faults import FaultSpec


class StressUnit:
    kinds = ("stress",)

    def argv(
        self, fault: FaultSpec, container_name: str, *, image: str, peer_ips: list[str] | None
    ) -> list[str]:
        # `image` is the nettools image of the network kinds; stress runs the stress-ng image (never pulled).
        params, stress_image = fault.params, ChaosConfig.from_env().stress_image
        flags = ["--duration", params["duration"], "--stress-image", stress_image, "--pull-image=false"]
        # One argv element: `--stressors=--cpu 4 ...`, as Pumba's docs write it.
        return ["stress", *flags, f"--stressors={params['stressors']}", container_name]

    def undo_spec(self, fault: FaultSpec, docker_spec: dict[str, Any]) -> dict[str, Any]:
        # Pumba's sidecar is unnamed: after a crash it is found by Pumba's label and the target's cgroup.
        return {
            "op": "pumba-stress",
            "container_id": docker_spec["container_id"],
            "cgroup_parent": docker_spec["cgroup_parent"],
        }

    def hold_ms(self, fault: FaultSpec) -> int | None:
        return 0  # Pumba waits out the duration and stops its sidecar itself


UNIT = StressUnit()
