"""The experiment's producer: the `chaosbed-producer` container (Docker SDK), or a local `tools produce`.

Either runs `tools produce` for one run until stopped; SIGTERM makes it flush and close its ledger.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import Mount

from tools.errors import EXIT_BAD_INPUT, EXIT_FINDING, ToolError
from tools.metrics.endpoints import PRODUCER_PORT
from tools.run.layout import PRODUCER_LOG, run_id_of

# The producer flushes for up to its --flush-timeout (20 s) on SIGTERM; give it room before SIGKILL.
STOP_TIMEOUT_S = 60


class Producer(Protocol):
    def check(self) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> str: ...


def produce_args(
    run_args: list[str],
    bootstrap_servers: str,
    topic: str,
    rate: float,
    kafka_config: list[str],
    metrics_listen: str = "",
) -> list[str]:
    return [
        "produce",
        *run_args,
        "--bootstrap-servers",
        bootstrap_servers,
        "--topic",
        topic,
        "--rate",
        f"{rate:g}",
        *(f"--kafka-config={item}" for item in kafka_config),
        *(["--metrics-listen", metrics_listen] if metrics_listen else []),
    ]


@dataclass(frozen=True)
class ContainerSettings:
    """How the producer role runs the producer container; given to `tools experiment run --producer`."""

    image: str
    bootstrap_servers: str  # as the container reaches the brokers
    name: str = "chaosbed-producer"
    network: str | None = None
    hostname: str | None = None
    aliases: list[str] = field(default_factory=list)
    # [{source, target, read_only}]: the project's tools/ and the runs root (mounted at runs_root).
    mounts: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    runs_root: str = "/runs"  # where the runs root is mounted in the container
    # The producer's Prometheus metrics: served on this port in the container, published on 127.0.0.1.
    metrics_port: int | None = None

    @classmethod
    def parse(cls, text: str) -> ContainerSettings:
        """A JSON object, or @path to one."""
        try:
            raw = Path(text[1:]).read_text() if text.startswith("@") else text
            data = json.loads(raw)
        except OSError as exc:
            raise ToolError(
                f"cannot read --producer file {text[1:]}: {exc.strerror}", EXIT_BAD_INPUT
            ) from None
        except ValueError as exc:
            raise ToolError(f"invalid --producer JSON: {exc}", EXIT_BAD_INPUT) from None
        if not isinstance(data, dict):
            raise ToolError("invalid --producer JSON: expected an object", EXIT_BAD_INPUT)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ToolError(
                f"--producer: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})",
                EXIT_BAD_INPUT,
            )
        for key in ("image", "bootstrap_servers"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise ToolError(f"--producer: {key!r} is required", EXIT_BAD_INPUT)
        for mount in data.get("mounts", []):
            if not isinstance(mount, dict) or not mount.get("source") or not mount.get("target"):
                raise ToolError("--producer: every mount needs a source and a target", EXIT_BAD_INPUT)
        port = data.get("metrics_port")
        if port not in (None, "", 0):
            if not str(port).isdigit() or not 0 < int(port) < 65536:
                raise ToolError(
                    f"--producer: metrics_port must be a port number, got {port!r}", EXIT_BAD_INPUT
                )
            data["metrics_port"] = int(port)
        else:
            data["metrics_port"] = None
        return cls(**data)


class ContainerProducer:
    """The producer as the container the chaos scenarios target (service `producer`)."""

    def __init__(
        self,
        settings: ContainerSettings,
        run_dir: Path,
        topic: str,
        rate: float,
        kafka_config: list[str],
        run_label: str,
    ) -> None:
        self.settings = settings
        self.run_dir = run_dir
        run_id = run_id_of(run_dir)
        self.command = produce_args(
            ["--runs-root", settings.runs_root, "--run-id", run_id],
            settings.bootstrap_servers,
            topic,
            rate,
            kafka_config,
            f"0.0.0.0:{settings.metrics_port}" if settings.metrics_port else "",
        )
        self.labels = {**settings.labels, run_label: run_id}
        self._client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.from_env()
            except DockerException as exc:
                raise ToolError(f"cannot reach the Docker engine: {exc}", EXIT_BAD_INPUT) from None
        return self._client

    def check(self) -> None:
        """The image and network exist, and the run directory is where the container sees its runs root."""
        s = self.settings
        try:
            self.client.images.get(s.image)
            if s.network:
                self.client.networks.get(s.network)
        except ImageNotFound:
            raise ToolError(f"producer image {s.image} is not on this engine (run `make setup`)") from None
        except NotFound:
            raise ToolError(f"Docker network {s.network} does not exist (run playbooks/site.yml)") from None
        roots = [m for m in s.mounts if m["target"] == s.runs_root]
        if not roots or Path(roots[0]["source"]).resolve() != self.run_dir.resolve().parent:
            raise ToolError(
                f"--producer: the run {self.run_dir} must be directly under the directory mounted at "
                f"{s.runs_root} in the producer container (give the same --runs-root)",
                EXIT_BAD_INPUT,
            )

    def start(self) -> None:
        s = self.settings
        try:
            # Started fresh for every run, as the producer role did (recreate).
            with contextlib.suppress(NotFound):
                self.client.containers.get(s.name).remove(force=True)
            networking = (
                {s.network: self.client.api.create_endpoint_config(aliases=s.aliases or None)}
                if s.network
                else None
            )
            container = self.client.containers.create(
                s.image,
                self.command,
                name=s.name,
                hostname=s.hostname,
                labels=self.labels,
                mounts=[
                    Mount(m["target"], str(m["source"]), type="bind", read_only=bool(m.get("read_only")))
                    for m in s.mounts
                ],
                network=s.network,
                networking_config=networking,
                restart_policy={"Name": "no"},
                stop_signal="SIGTERM",
                ports={f"{s.metrics_port}/tcp": ("127.0.0.1", s.metrics_port)} if s.metrics_port else None,
            )
            container.start()
        except (APIError, DockerException) as exc:
            raise ToolError(f"cannot start the producer container {s.name}: {exc}", EXIT_FINDING) from None

    def stop(self) -> str:
        """SIGTERM, wait for the producer to flush and exit; returns its last log line."""
        try:
            container = self.client.containers.get(self.settings.name)
            container.stop(timeout=STOP_TIMEOUT_S)
            logs = container.logs(tail=5).decode(errors="replace").strip().splitlines()
        except NotFound:
            return "producer container gone"
        except (APIError, DockerException) as exc:
            raise ToolError(f"cannot stop the producer container: {exc}", EXIT_FINDING) from None
        return logs[-1] if logs else ""


class LocalProducer:
    """`tools produce` as a child process of this one (the bench, or no --producer given)."""

    def __init__(
        self, run_dir: Path, bootstrap_servers: str, topic: str, rate: float, kafka_config: list[str]
    ) -> None:
        self.run_dir = run_dir
        self.argv = [
            sys.executable,
            "-m",
            "tools",
            *produce_args(
                ["--run-dir", str(run_dir)],
                bootstrap_servers,
                topic,
                rate,
                kafka_config,
                f"127.0.0.1:{PRODUCER_PORT}",
            ),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def check(self) -> None:
        return None

    def start(self) -> None:
        with (self.run_dir / PRODUCER_LOG).open("ab") as log:
            # Its own session: a Ctrl-C in the terminal reaches the experiment, which stops it in order.
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=log, start_new_session=True)

    def stop(self) -> str:
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        lines = (self.run_dir / PRODUCER_LOG).read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""
