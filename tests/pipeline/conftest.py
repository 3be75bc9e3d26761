"""The provisioned pipeline on the local Docker engine: site.yml runs once per session."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.models.containers
import psycopg2
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Pipeline:
    bootstrap_servers: str
    postgres_dsn: str
    topic: str
    docker: docker.DockerClient

    def connect(self) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(self.postgres_dsn)
        conn.autocommit = True
        return conn

    def container(self, service: str) -> docker.models.containers.Container:
        return self.docker.containers.get(f"chaosbed-{service}")


def run_playbook(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ansible-playbook"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
        timeout=1200,
    )


def recap_changed(output: str) -> dict[str, int]:
    """changed=N per host, read from the PLAY RECAP."""
    recap = re.finditer(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output, re.M)
    return {m.group(1): int(m.group(2)) for m in recap}


@pytest.fixture(scope="session")
def site_run() -> subprocess.CompletedProcess[str]:
    result = run_playbook("playbooks/site.yml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result


@pytest.fixture(scope="session")
def pipeline(site_run: subprocess.CompletedProcess[str]) -> Pipeline:
    passfile = ROOT / ".secrets" / "pgpass"
    return Pipeline(
        bootstrap_servers="127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094",
        postgres_dsn=f"postgresql://chaosbed@127.0.0.1:5432/chaosbed?passfile={passfile}",
        topic="events",
        docker=docker.from_env(),
    )
