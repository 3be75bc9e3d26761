"""Faults timed to the pipeline (`after: {event: sink-commit, delay: 0-20ms}`) and aimed at a role
(`target: kafka-leader-most`) rather than only at a clock offset and a fixed service.

A triggered fault's `at` is when chaosbed starts watching; it fires at the first matching event after
that, plus a delay drawn from the scenario's seed, or fails if none comes `within` (default 60s). A
dynamic target is resolved to a service when the fault fires. Both are about WHEN and WHO only: what
the fault does is its kind's business (tools/chaos/kinds/).

Events, watched from outside the job:
- `sink-commit`: a micro-batch committed to PostgreSQL. The postgres role's schema installs
  statement-level triggers on `sink_batches` and `events_append` that NOTIFY `chaosbed_sink_commit`
  with the transaction id, so a batch is one notification (duplicates within a transaction collapse)
  whichever sink wrote it; LISTEN delivers it within a millisecond or two of the commit.
- `batch-start`: Spark wrote a new batch to its checkpoint's offsets log, the first thing a micro-batch
  does (seen by polling the checkpoint volume from the Docker host).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import select
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions

from tools.chaos.durations import DurationError, format_duration, parse_duration
from tools.chaos.kinds import FaultError

SINK_COMMIT = "sink-commit"
BATCH_START = "batch-start"
EVENTS = (SINK_COMMIT, BATCH_START)
NOTIFY_CHANNEL = "chaosbed_sink_commit"
LEADER_MOST = "kafka-leader-most"
ACTIVE_CONTROLLER = "kafka-active-controller"
DYNAMIC_TARGETS = (LEADER_MOST, ACTIVE_CONTROLLER)
TRIGGER_KEYS = ("event", "delay", "within")
DEFAULT_WITHIN_MS = 60_000
# How often a watcher looks at the stop flag (and the checkpoint directory, for batch-start).
POLL_S = 0.1
CHECKPOINT_POLL_S = 0.005
_RANGE = re.compile(r"^\s*([^-\s][^-]*?)\s*(?:-\s*(\S+))?\s*$")


class TriggerError(RuntimeError):
    """A trigger cannot watch (no DSN, no schema trigger, no checkpoint): the fault is recorded failed."""


@dataclass(frozen=True)
class Trigger:
    event: str
    delay_min_ms: int
    delay_max_ms: int
    within_ms: int

    @property
    def wait_ms(self) -> int:
        """The longest a triggered fault may start after its `at`: the watch plus the largest delay."""
        return self.within_ms + self.delay_max_ms

    def describe(self) -> str:
        lo, hi = self.delay_min_ms, self.delay_max_ms
        delay = "" if hi == 0 else f" +{lo}ms" if lo == hi else f" +{lo}-{hi}ms"
        return f"after {self.event}{delay}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "delay": f"{self.delay_min_ms}-{self.delay_max_ms}ms",
            "within": format_duration(self.within_ms),
        }

    def draw_delay(self, seed: int | None, fault_index: int, service: str) -> int:
        """The jitter, drawn from the scenario's seed: the same seed gives the same delays."""
        rng = random.Random(f"{seed or 0}/{fault_index}/{service}")
        return rng.randint(self.delay_min_ms, self.delay_max_ms)


def _delay(value: object) -> tuple[int, int]:
    """`20ms`, `0-20ms` or `5ms-1s`: a fixed delay or a range, Go durations (a bare lower bound takes the
    upper bound's unit)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise FaultError(f"'after.delay' must be a duration or a range like 0-20ms, got {value!r}")
    match = _RANGE.match(str(value))
    if match is None:
        raise FaultError(f"'after.delay': invalid delay {value!r} (use 20ms or a range like 0-20ms)")
    lo_text, hi_text = match.group(1), match.group(2)
    if hi_text is not None and re.fullmatch(r"\d+(\.\d*)?", lo_text):
        unit = re.sub(r"^[\d.]+", "", hi_text)
        lo_text = f"{lo_text}{unit}" if lo_text not in ("0",) else lo_text
    try:
        lo = parse_duration(lo_text)
        hi = parse_duration(hi_text) if hi_text is not None else lo
    except DurationError as exc:
        raise FaultError(f"'after.delay': {exc}") from None
    if lo < 0 or hi < 0:
        raise FaultError(f"'after.delay' must not be negative, got {value!r}")
    if lo > hi:
        raise FaultError(f"'after.delay': the lower bound is larger than the upper one in {value!r}")
    return lo, hi


def parse_trigger(raw: object) -> Trigger:
    """`after: sink-commit` or `after: {event: sink-commit, delay: 0-20ms, within: 60s}`."""
    if isinstance(raw, str):
        raw = {"event": raw}
    if not isinstance(raw, dict):
        raise FaultError(f"'after' must be an event name or a mapping with 'event', got {raw!r}")
    unknown = sorted(str(k) for k in raw if k not in TRIGGER_KEYS)
    if unknown:
        raise FaultError(f"unknown key {unknown[0]!r} in 'after' (allowed: {', '.join(TRIGGER_KEYS)})")
    event = raw.get("event")
    if event not in EVENTS:
        raise FaultError(f"unknown event {event!r} in 'after' (known: {', '.join(EVENTS)})")
    lo, hi = _delay(raw.get("delay", "0ms"))
    within = raw.get("within", format_duration(DEFAULT_WITHIN_MS))
    try:
        within_ms = parse_duration(within)
    except DurationError as exc:
        raise FaultError(f"'after.within': {exc}") from None
    if within_ms <= 0:
        raise FaultError(f"'after.within' must be a positive duration, got {within!r}")
    return Trigger(str(event), lo, hi, within_ms)


def is_dynamic(service: str) -> bool:
    return service in DYNAMIC_TARGETS


# ----------------------------------------------------------------------------------------------------
# Watching


@dataclass(frozen=True)
class Fired:
    """What a trigger saw: the event's time (when it reached chaosbed) and what it was."""

    event_ms: int
    detail: str


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class SinkCommitWatcher:
    """LISTEN on the sink-commit channel from arm() on; wait() returns at the first notification after."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: psycopg2.extensions.connection | None = None

    def arm(self) -> None:
        try:
            conn = psycopg2.connect(self.dsn, connect_timeout=5, application_name="chaosbed-trigger")
        except psycopg2.Error as exc:
            raise TriggerError(f"cannot LISTEN for {SINK_COMMIT}: {' '.join(str(exc).split())}") from None
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'chaosbed_sink_commit' AND NOT tgisinternal"
            )
            row = cur.fetchone()
            if not row or row[0] == 0:
                conn.close()
                raise TriggerError(
                    "the sink-commit NOTIFY triggers are not installed (provision with playbooks/site.yml)"
                )
            cur.execute(f"LISTEN {NOTIFY_CHANNEL}")
        self.conn = conn

    def wait(self, deadline: float, stop: threading.Event) -> Fired | None:
        conn = self.conn
        if conn is None:
            raise TriggerError("watcher not armed")
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([conn], [], [], min(POLL_S, left))
            if not ready:
                continue
            received = now_ms()
            try:
                conn.poll()
            except psycopg2.Error as exc:
                raise TriggerError(f"lost the LISTEN connection: {' '.join(str(exc).split())}") from None
            if conn.notifies:
                note = conn.notifies[0]
                conn.notifies.clear()
                return Fired(received, f"txid {note.payload}")
        return None

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self.conn.close()
            self.conn = None


class BatchStartWatcher:
    """A new file in the Spark checkpoint's offsets log: Spark writes it before it reads the batch.
    The checkpoint volume is read from the Docker host (the fastest view from outside the job)."""

    def __init__(self, locate: Callable[[], Path]) -> None:
        self.locate = locate
        self.dirs: list[Path] = []
        self.seen: dict[Path, set[str]] = {}

    def arm(self) -> None:
        root = self.locate()
        self.dirs = sorted(root.glob("**/offsets")) if root.name != "offsets" else [root]
        if not self.dirs:
            raise TriggerError(f"no Spark offsets log under {root}")
        self.seen = {d: self._batches(d) for d in self.dirs}

    @staticmethod
    def _batches(directory: Path) -> set[str]:
        try:
            return {n for n in os.listdir(directory) if n.isdigit()}
        except OSError:
            return set()

    def wait(self, deadline: float, stop: threading.Event) -> Fired | None:
        while not stop.is_set() and time.monotonic() < deadline:
            for directory in self.dirs:
                new = self._batches(directory) - self.seen[directory]
                if new:
                    return Fired(now_ms(), f"batch {max(new, key=int)} ({directory.parent.name})")
            stop.wait(CHECKPOINT_POLL_S)
        return None

    def close(self) -> None:
        return None


# ----------------------------------------------------------------------------------------------------
# Dynamic targets


def node_ids(services: Mapping[str, str]) -> dict[int, str]:
    """{node.id: service} from each Kafka service's server.properties text."""
    out = {}
    for service, text in services.items():
        match = re.search(r"^\s*node\.id\s*=\s*(\d+)\s*$", text, re.M)
        if match:
            out[int(match.group(1))] = service
    return out


def leader_most(partition_leaders: Mapping[int, int]) -> int:
    """The node leading the most partitions (ties: the lowest id, so a plan is reproducible)."""
    counts: dict[int, int] = {}
    for leader in partition_leaders.values():
        if leader >= 0:
            counts[leader] = counts.get(leader, 0) + 1
    if not counts:
        raise TriggerError("no partition has a leader")
    return min(counts, key=lambda node: (-counts[node], node))


def quorum_leader(status_text: str) -> int:
    """LeaderId from `kafka-metadata-quorum describe --status` output."""
    match = re.search(r"^LeaderId:\s*(-?\d+)", status_text, re.M)
    if match is None or int(match.group(1)) < 0:
        raise TriggerError("the metadata quorum reports no leader")
    return int(match.group(1))


@dataclass
class TriggerContext:
    """What the watchers and resolvers need: the database, the brokers, the engine, the seed."""

    client: Any  # docker.DockerClient
    cfg: Any  # ChaosConfig
    postgres_dsn: str | None
    bootstrap_servers: str | None  # given explicitly; else the brokers' published ports, else `recorded`
    topic: str
    seed: int | None
    recorded_bootstrap: str | None = None  # run.json's (may be the producer container's view)

    def watcher(self, event: str) -> SinkCommitWatcher | BatchStartWatcher:
        if event == SINK_COMMIT:
            if not self.postgres_dsn:
                raise TriggerError("no PostgreSQL DSN to LISTEN on (pass --postgres-dsn or use a run.json)")
            return SinkCommitWatcher(self.postgres_dsn)
        return BatchStartWatcher(self._checkpoint_dir)

    def _container(self, service: str) -> Any:
        from tools.chaos import targets

        found = targets.find(self.client, self.cfg, service)
        if found is None:
            raise TriggerError(f"no container for service {service!r}")
        return self.client.containers.get(found.container_id)

    def _checkpoint_dir(self) -> Path:
        container = self._container("spark")
        for mount in container.attrs.get("Mounts") or []:
            if mount.get("Destination") == "/checkpoint" and mount.get("Source"):
                return Path(mount["Source"])
        raise TriggerError("the spark container has no /checkpoint mount to watch")

    def _kafka_containers(self) -> list[tuple[str, Any]]:
        """(service, container) of every running Kafka container (brokers and controllers)."""
        out = []
        for container in self.client.containers.list(filters={"label": f"{self.cfg.managed_label}=true"}):
            service = (container.labels or {}).get(self.cfg.service_label, "")
            if service.startswith(self.cfg.broker_prefix):
                out.append((service, container))
        return out

    def _kafka_services(self) -> dict[str, str]:
        """Every running Kafka container's server.properties, by service name."""
        out = {}
        for service, container in self._kafka_containers():
            code, text = container.exec_run(["cat", "/etc/kafka/server.properties"])
            if code == 0:
                out[service] = text.decode(errors="replace")
        return out

    def resolve(self, name: str) -> tuple[str, str]:
        """The service a dynamic target names right now, and how it was found."""
        services = self._kafka_services()
        ids = node_ids(services)
        if name == LEADER_MOST:
            leaders = self._partition_leaders()
            node = leader_most(leaders)
            led = sum(1 for leader in leaders.values() if leader == node)
            how = f"node {node} leads {led} of {len(leaders)} partitions of {self.topic}"
        else:
            node = self._active_controller(services)
            how = f"node {node} is the metadata quorum's leader"
        if node not in ids:
            raise TriggerError(f"{name}: {how}, but no running container has node.id={node}")
        return ids[node], how

    def _published(self) -> str | None:
        """The brokers as this host reaches them: the ports their containers publish."""
        found = []
        for _service, container in self._kafka_containers():
            for bindings in (container.attrs.get("HostConfig", {}).get("PortBindings") or {}).values():
                for b in bindings or []:
                    found.append(f"{b.get('HostIp') or '127.0.0.1'}:{b['HostPort']}")
        return ",".join(sorted(found)) or None

    def _partition_leaders(self) -> dict[int, int]:
        from confluent_kafka.admin import AdminClient

        bootstrap = self.bootstrap_servers or self._published() or self.recorded_bootstrap
        if not bootstrap:
            raise TriggerError("no Kafka bootstrap servers to read leaders from (pass --bootstrap-servers)")
        admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000})
        try:
            meta = admin.list_topics(self.topic, timeout=10)
        except Exception as exc:  # KafkaException: one line on the record
            raise TriggerError(f"cannot read the metadata of {self.topic}: {exc}") from None
        topic = meta.topics.get(self.topic)
        if topic is None or topic.error is not None:
            raise TriggerError(f"no metadata for topic {self.topic!r}")
        return {pid: p.leader for pid, p in topic.partitions.items()}

    def _active_controller(self, services: Mapping[str, str]) -> int:
        """KRaft's DescribeQuorum, through Kafka's own tool in a broker container (the Python client has
        no DescribeQuorum; DescribeCluster names a random broker under KRaft)."""
        for service in sorted(services):
            text = services[service]
            if not re.search(r"^\s*process\.roles\s*=.*broker", text, re.M):
                continue
            listener = re.search(r"^\s*listeners\s*=\s*(.*)$", text, re.M)
            port = "19092"
            if listener:
                found = re.search(r"INTERNAL://[^:,]*:(\d+)", listener.group(1))
                port = found.group(1) if found else port
            code, out = self._container(service).exec_run(
                [
                    "sh",
                    "-c",
                    'java -cp "/opt/kafka/libs/*" org.apache.kafka.tools.MetadataQuorumCommand '
                    f"--bootstrap-server {service}:{port} describe --status",
                ]
            )
            if code == 0:
                return quorum_leader(out.decode(errors="replace"))
        raise TriggerError("no running broker could describe the metadata quorum")


def context_settings(run_json: Mapping[str, Any]) -> dict[str, Any]:
    """postgres_dsn, bootstrap_servers and topic as the experiment recorded them in run.json."""
    return {
        "postgres_dsn": run_json.get("postgres_dsn"),
        "bootstrap_servers": run_json.get("bootstrap_servers"),
        "topic": run_json.get("topic") or "events",
    }


def read_run_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
