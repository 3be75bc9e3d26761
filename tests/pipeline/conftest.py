"""The provisioned pipeline on the local Docker engine: site.yml runs once per session.

Modules that check the default pipeline run first; then the modules that provision another configuration
(the standalone cluster, the unsafe profiles) one after the other, each provisioning what it needs, and
the default comes back once, after the last of them (`provisions_back`): every switch is a site.yml run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.models.containers
import psycopg2
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The default pipeline's modules, then those that provision another configuration (see the docstring).
MODULE_ORDER = (
    "test_pipeline",
    "test_metrics",
    "test_postgres_stop",
    "test_chaos_e2e",
    "test_cluster",
    "test_layers",
    "test_profiles",
)
# A chaos experiment through the playbook: its exit code, its output and its run directory.
PlaybookRun = tuple[int, str, Path]


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """This package's tests in MODULE_ORDER (unknown modules first), in the slots they already hold."""
    here = Path(__file__).parent
    slots = [i for i, item in enumerate(items) if item.path.parent == here]

    def rank(item: pytest.Item) -> int:
        name = item.path.stem
        return MODULE_ORDER.index(name) if name in MODULE_ORDER else -1

    ordered = sorted((items[i] for i in slots), key=rank)
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item


@pytest.fixture(scope="package")
def provisions_back() -> Iterator[None]:
    """For tests that provision another configuration: the default pipeline again after this package."""
    yield
    result = run_playbook("playbooks/site.yml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.fixture(scope="package")
def standalone_ci_run(pipeline: Pipeline, provisions_back: None) -> PlaybookRun:
    """`chaos.yml -e scenario=ci` on Spark's standalone cluster (provisioned by the playbook's site.yml):
    CI's chaos end-to-end run; the cluster's own tests then run on the cluster it left."""
    result = run_playbook(
        "playbooks/chaos.yml",
        "-e", "scenario=ci",
        "-e", "spark_deploy=standalone",
    )  # fmt: skip
    return result.returncode, result.stdout, run_of(result.stdout)


def run_of(stdout: str) -> Path:
    """The run directory `tools experiment run` printed (`run: <dir>`), as the playbook shows it."""
    found = re.findall(r"""^\s*- ['"]?run: ([^'"\s]+)""", stdout, re.M)
    assert len(found) == 1, stdout[-4000:]
    run = Path(found[0])
    return run if run.is_absolute() else ROOT / run


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
