"""The layered checker on the provisioned pipeline: each known-unsafe profile is placed at its own layer.

- unsafe-offsets: Spark is SIGKILLed while the producer keeps going and comes back without its
  checkpoint, from `latest`: the ids produced meanwhile are a Spark `offset-gap` between the old
  query's last batch and the new query's first, and the Kafka log holds every one of them.
- unsafe-kafka: a forced unclean failover (replication factor 2, acks=1; the follower paused until it
  leaves the ISR, the leader SIGKILLed, the stale follower elected under unclean election, the old
  leader restarted so that it truncates): Kafka `lost-write`, not a sink problem.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import uuid
from pathlib import Path

from confluent_kafka import ElectionType, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient

from .conftest import ROOT, Pipeline
from .test_profiles import TOOLS, provision, tools, wait_for_progress_after_restart


def start_producer(
    pipeline: Pipeline, runs: Path, run_id: str, profile: str, *extra: str, topic: str | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            TOOLS,
            "produce",
            "--run-id",
            run_id,
            "--runs-root",
            str(runs),
            "--rate",
            "300",
            "--duration",
            "900",
            "--bootstrap-servers",
            pipeline.bootstrap_servers,
            "--topic",
            topic or pipeline.topic,
            "--postgres-dsn",
            pipeline.postgres_dsn,
            "--profile",
            profile,
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(
    pipeline: Pipeline, query: str, params: tuple[object, ...], at_least: int, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    with pipeline.connect() as conn, conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute(query, params)
            if cur.fetchone()[0] >= at_least:
                return
            time.sleep(1)
    raise AssertionError(f"not reached within {timeout:.0f} s: {query} >= {at_least}")


def stop_producer(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)  # a clean stop: the ledger is flushed and closed
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 143), err


def validate(runs: Path, run_id: str) -> dict:
    checked = tools("validate", str(runs / run_id), "--json", "--settle", "10", "--settle-timeout", "300")
    assert checked.returncode in (0, 1), checked.stderr
    result = json.loads(checked.stdout)
    result["exit_code"] = checked.returncode
    return result


def counts(result: dict) -> dict[str, int]:
    return {n: c["count"] for n, c in result["layers"]["classes"].items() if c["count"]}


def test_unsafe_offsets_is_a_spark_gap_and_the_log_holds_every_id(
    pipeline: Pipeline, tmp_path: Path, provisions_back: None
) -> None:
    provision("-e", "profile=unsafe-offsets")
    run_id = f"test-offsets-{uuid.uuid4().hex[:6]}"
    rows = "SELECT count(*) FROM events WHERE run_id = %s"
    producer = start_producer(pipeline, tmp_path, run_id, "unsafe-offsets")
    try:
        wait_until(pipeline, rows, (run_id,), 300, 180)
        spark = pipeline.container("spark")
        spark.kill()  # SIGKILL; the producer goes on
        time.sleep(5)
        spark.start()  # the job drops its checkpoint and starts from `latest`: a new query id
        wait_for_progress_after_restart(pipeline)
        # The new query has committed rows of the run: its first batch is the gap's far side.
        wait_until(
            pipeline, "SELECT count(DISTINCT query_id) FROM events WHERE run_id = %s", (run_id,), 2, 300
        )
        time.sleep(3)
    finally:
        stop_producer(producer)
    result = validate(tmp_path, run_id)
    assert result["exit_code"] == 1
    assert result["missing_count"] > 0
    assert result["kafka_audit"].get("run_records", 0) >= result["acked_count"], result["kafka_audit"]
    found = counts(result)
    assert found.get("offset-gap", 0) >= 1, result["layers"]
    assert not {n for n in found if result["layers"]["classes"][n]["layer"] == "kafka"}, found
    assert "skipped" not in found and "unread" not in found, found
    missing = result["layers"]["missing_by_layer"]
    assert missing["spark_gap"] == result["missing_count"], missing
    gaps = result["layers"]["classes"]["offset-gap"]["witnesses"]
    assert all(g["query_id"] != g["prev_query_id"] for g in gaps), gaps


def broker_containers(pipeline: Pipeline) -> dict[int, str]:
    """Broker node id -> its container's service name, by the host port each publishes (metadata
    advertises 127.0.0.1:<port> to the host)."""
    admin = AdminClient({"bootstrap.servers": pipeline.bootstrap_servers})
    ports = {b.port: b.id for b in admin.list_topics(timeout=10).brokers.values()}
    out = {}
    for container in pipeline.docker.containers.list(filters={"name": "chaosbed-kafka-"}):
        for bindings in (container.attrs["HostConfig"].get("PortBindings") or {}).values():
            for binding in bindings or []:
                if int(binding.get("HostPort") or 0) in ports:
                    out[ports[int(binding["HostPort"])]] = container.name.removeprefix("chaosbed-")
    return out


def partition_state(pipeline: Pipeline, topic: str, partition: int) -> tuple[int, list[int], list[int]]:
    """(leader, replicas, isr) of one partition; leader -1 when it has none."""
    admin = AdminClient({"bootstrap.servers": pipeline.bootstrap_servers})
    desc = admin.describe_topics(TopicCollection([topic]))[topic].result(timeout=10)
    p = desc.partitions[partition]
    return (p.leader.id if p.leader else -1), [r.id for r in p.replicas], [r.id for r in p.isr]


def wait_state(
    pipeline: Pipeline, topic: str, check, timeout: float = 60
) -> tuple[int, list[int], list[int]]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    state = (-1, [], [])
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # a describe during an election may fail: ask again
            state = partition_state(pipeline, topic, 0)
            if check(state):
                return state
        time.sleep(0.5)
    raise AssertionError(f"partition 0 of {topic} never reached the state wanted; last {state}")


def test_unsafe_kafka_unclean_failover_is_a_kafka_lost_write(
    pipeline: Pipeline, tmp_path: Path, provisions_back: None
) -> None:
    provision("-e", "profile=unsafe-kafka")
    topic = "events-unsafe"
    run_id = f"test-kafka-{uuid.uuid4().hex[:6]}"
    names = broker_containers(pipeline)
    leader, replicas, _isr = wait_state(pipeline, topic, lambda s: s[0] >= 0 and len(s[2]) == 2)
    follower = next(r for r in replicas if r != leader)
    lead, follow = pipeline.container(names[leader]), pipeline.container(names[follower])
    rows = "SELECT count(*) FROM events WHERE run_id = %s"
    producer = start_producer(
        pipeline, tmp_path, run_id, "unsafe-kafka", "--kafka-config", "acks=1",
        "--kafka-config", "enable.idempotence=false", topic=topic,
    )  # fmt: skip
    try:
        wait_until(pipeline, rows, (run_id,), 300, 180)
        follow.pause()  # fenced within the session timeout: out of the ISR
        try:
            wait_state(pipeline, topic, lambda s: s[2] == [leader])
            time.sleep(5)  # writes acknowledged by the leader alone (acks=1)
            lead.kill()  # SIGKILL: those writes exist nowhere else
        finally:
            follow.unpause()
        admin = AdminClient({"bootstrap.servers": pipeline.bootstrap_servers})
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(Exception):  # describe may fail while the partition has no leader
                if partition_state(pipeline, topic, 0)[0] == follower:
                    break
            assert time.monotonic() < deadline, "no unclean election of the stale follower"
            with contextlib.suppress(Exception):  # refused until the follower is unfenced: ask again
                admin.elect_leaders(ElectionType.UNCLEAN, [TopicPartition(topic, 0)]).result(timeout=10)
            time.sleep(1)
        time.sleep(5)  # new writes take the lost offsets on the new leader
        lead.start()  # rejoins as a follower and truncates to the new leader's log
        wait_state(pipeline, topic, lambda s: sorted(s[2]) == sorted(replicas), timeout=120)
        time.sleep(3)
    finally:
        with contextlib.suppress(Exception):
            lead.start()
        stop_producer(producer)
    result = validate(tmp_path, run_id)
    assert result["exit_code"] == 1
    found = counts(result)
    # Proven lost by Kafka: the acknowledged ids are nowhere in the log although later offsets of their
    # partition were read (whether Spark had read them before the truncation or not).
    assert found.get("lost-write", 0) >= 1, result["layers"]
    assert result["kafka_audit"].get("run_records", 0) > 0, result["kafka_audit"]
