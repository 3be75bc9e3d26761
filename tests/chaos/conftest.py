"""Fixtures for the chaos tests: a throwaway test bed of our own containers on our own network.

Every bed has a unique container prefix and label namespace, passed to the code under test through the
same environment variables a user would set, so the real pipeline's containers are never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import DockerException, ImageNotFound, NotFound
from docker.models.containers import Container

from tools.chaos.config import ChaosConfig

IMAGE = ChaosConfig().nettools_image
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except DockerException as exc:
        pytest.skip(f"no Docker engine: {exc}")
    # The image is imported by `make setup`; wait a little for it rather than pull (there is no registry).
    deadline = time.monotonic() + 300
    while True:
        try:
            client.images.get(IMAGE)
            return client
        except ImageNotFound:
            if time.monotonic() > deadline:
                # A failure, not a skip: a missing image once skipped every chaos test on a fresh machine.
                pytest.fail(f"{IMAGE} is not on this engine (run make setup)")
            time.sleep(5)


@dataclass
class Bed:
    client: docker.DockerClient
    uid: str
    tmp: Path
    network: Any
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"cbt{self.uid}-"

    @property
    def ns(self) -> str:
        return f"io.cbt{self.uid}"

    @property
    def runs_dir(self) -> Path:
        return self.tmp / "runs"

    @property
    def cfg(self) -> ChaosConfig:
        return ChaosConfig.from_env(self.env)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("CHAOSBED_PUMBA_BIN", None)
        env.update(
            CHAOSBED_CONTAINER_PREFIX=self.prefix,
            CHAOSBED_LABEL_NAMESPACE=self.ns,
            CHAOSBED_RUNS_ROOT=str(self.runs_dir),
            CHAOSBED_BROKER_PREFIX="kafka",
            # Never the pipeline's Toxiproxy (`restore --all` sweeps toxics): a closed port, unless set.
            CHAOSBED_TOXIPROXY_URL="http://127.0.0.1:9",
            PYTHONPATH=str(REPO),
        )
        env.update(self.extra_env)
        return env

    # --- containers -----------------------------------------------------------------------------

    def service(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        command: list[str] | None = None,
        **kwargs: Any,
    ) -> Container:
        """A container of our own (`sleep infinity` unless told), labelled as service `name` of this bed."""
        return self.client.containers.run(
            IMAGE,
            command or ["sleep", "infinity"],
            name=f"{self.prefix}{name}",
            labels={f"{self.ns}.managed": "true", f"{self.ns}.service": name, **(labels or {})},
            network=self.network.name,
            detach=True,
            **kwargs,
        )

    def state(self, name: str) -> dict[str, Any]:
        return self.client.api.inspect_container(f"{self.prefix}{name}")["State"]

    def ip(self, name: str) -> str:
        attrs = self.client.api.inspect_container(f"{self.prefix}{name}")
        return attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"]

    def netns_exec(self, name: str, cmd: list[str]) -> str:
        """Run a command in the target's network namespace (a labelled throwaway container)."""
        cid = self.client.api.inspect_container(f"{self.prefix}{name}")["Id"]
        out = self.client.containers.run(
            IMAGE,
            cmd,
            network_mode=f"container:{cid}",
            cap_add=["NET_ADMIN"],
            labels={f"{self.ns}.probe": "true"},
            remove=True,
        )
        return out.decode()

    def rules(self, name: str) -> str:
        return self.netns_exec(name, ["iptables", "-S"])

    def chaos_rules(self, name: str) -> list[str]:
        return [ln for ln in self.rules(name).splitlines() if "chaosbed:" in ln]

    def sidecars(self) -> list[Container]:
        return self.client.containers.list(
            all=True, filters={"label": f"{self.ns}.sidecar=true"}, ignore_removed=True
        )

    # --- the CLI --------------------------------------------------------------------------------

    def scenario(self, text: str, name: str = "s.yml") -> Path:
        path = self.tmp / name
        path.write_text(text)
        return path

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tools.chaos", *args],
            env=self.env,
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tools.chaos", *args],
            env=self.env,
            cwd=self.tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def journal(self, run_dir: Path) -> list[dict[str, Any]]:
        path = run_dir / "chaos-journal.jsonl"
        if not path.exists():
            return []
        return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip().endswith("}")]

    def timeline(self, run_dir: Path) -> list[dict[str, Any]]:
        path = run_dir / "timeline.jsonl"
        return [json.loads(ln) for ln in path.read_text().splitlines()] if path.exists() else []

    def wait_for(
        self, what: str, predicate: Any, timeout: float = 30, proc: subprocess.Popen[str] | None = None
    ) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"chaos exited {proc.returncode} before {what}: {proc.communicate()}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def wait_applied(
        self, run_dir: Path, count: int, proc: subprocess.Popen[str], timeout: float = 30
    ) -> None:
        self.wait_for(
            f"{count} applied fault(s)",
            lambda: sum(r["type"] == "applied" for r in self.journal(run_dir)) >= count,
            timeout,
            proc,
        )

    @staticmethod
    def kill_hard(proc: subprocess.Popen[str]) -> None:
        """SIGKILL the chaos run: no handler, no finally, exactly like a crash."""
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def cleanup(self) -> None:
        for label in ("managed", "sidecar", "probe"):
            for container in self.client.containers.list(
                all=True, filters={"label": f"{self.ns}.{label}"}, ignore_removed=True
            ):
                with contextlib.suppress(NotFound):
                    container.remove(force=True)
        with contextlib.suppress(NotFound):
            self.network.remove()


@pytest.fixture
def bed(docker_client: docker.DockerClient, tmp_path: Path) -> Iterator[Bed]:
    uid = uuid.uuid4().hex[:8]
    network = docker_client.networks.create(f"cbt{uid}", labels={f"io.cbt{uid}.managed": "true"})
    test_bed = Bed(docker_client, uid, tmp_path, network)
    try:
        yield test_bed
    finally:
        test_bed.cleanup()


@pytest.fixture(scope="session")
def bed_type() -> type[Bed]:
    """The Bed class, for fixtures of wider scope that build their own bed (test modules cannot import it)."""
    return Bed
