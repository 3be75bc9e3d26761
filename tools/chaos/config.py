"""Where chaos finds containers, images and run dirs; overridable so tests never touch the pipeline."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tools.run.layout import DEFAULT_RUNS_ROOT, runs_root

# The pipeline's services; used for help texts and the built-in random scenario.
PIPELINE_SERVICES = ("kafka-1", "kafka-2", "kafka-3", "postgres", "spark", "producer")


@dataclass(frozen=True)
class ChaosConfig:
    """Naming conventions shared by targets, sidecars, restore and the executors."""

    container_prefix: str = "chaosbed-"
    label_namespace: str = "io.chaosbed"
    # The images role tags it with chaosbed_image_revision (playbooks/group_vars/all/versions.yml);
    # tests/unit/test_nettools_image.py fails when the two part.
    nettools_image: str = "chaosbed/nettools:3"
    # stress-ng for the stress kind's sidecar, built the same way (tests/unit/test_stress_image.py).
    stress_image: str = "chaosbed/stress-ng:3"
    # The Toxiproxy API of the proxy kinds (the toxiproxy role publishes it on loopback).
    toxiproxy_url: str = "http://127.0.0.1:8474"
    runs_root: Path = DEFAULT_RUNS_ROOT
    # Services whose names start with this are Kafka brokers (the quorum rule counts them).
    broker_prefix: str = "kafka"

    @property
    def managed_label(self) -> str:
        return f"{self.label_namespace}.managed"

    @property
    def service_label(self) -> str:
        return f"{self.label_namespace}.service"

    @property
    def sidecar_label(self) -> str:
        return f"{self.label_namespace}.sidecar"

    @property
    def run_label(self) -> str:
        return f"{self.label_namespace}.run"

    @property
    def fault_label(self) -> str:
        return f"{self.label_namespace}.fault"

    def is_broker(self, service: str) -> bool:
        return service.startswith(self.broker_prefix)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ChaosConfig:
        env = os.environ if environ is None else environ
        default = cls()
        return cls(
            container_prefix=env.get("CHAOSBED_CONTAINER_PREFIX", default.container_prefix),
            label_namespace=env.get("CHAOSBED_LABEL_NAMESPACE", default.label_namespace),
            nettools_image=env.get("CHAOSBED_NETTOOLS_IMAGE", default.nettools_image),
            stress_image=env.get("CHAOSBED_STRESS_IMAGE", default.stress_image),
            toxiproxy_url=env.get("CHAOSBED_TOXIPROXY_URL", default.toxiproxy_url),
            runs_root=runs_root(None, env),
            broker_prefix=env.get("CHAOSBED_BROKER_PREFIX", default.broker_prefix),
        )


# iptables rules carry this comment prefix; restore finds chaosbed's rules (and only those) by it.
RULE_COMMENT_PREFIX = "chaosbed:"


def rule_comment(fault_id: str) -> str:
    return f"{RULE_COMMENT_PREFIX}{fault_id}"
