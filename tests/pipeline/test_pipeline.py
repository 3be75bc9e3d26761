"""The provisioned pipeline, checked for real: Kafka metadata, exactly-once delivery, restarts."""

from __future__ import annotations

import json
import time
import uuid

import psycopg2
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from .conftest import Pipeline, recap_changed, run_playbook


def produce(pipeline: Pipeline, run_id: str, ids: range) -> int:
    """Send events with acks=all and idempotence; return how many were acknowledged."""
    acked = 0

    def on_delivery(err: object, _msg: object) -> None:
        nonlocal acked
        if err is None:
            acked += 1

    settings = {"bootstrap.servers": pipeline.bootstrap_servers, "acks": "all", "enable.idempotence": True}
    producer = Producer(settings)
    for event_id in ids:
        value = {"run_id": run_id, "event_id": event_id, "produced_at_ms": int(time.time() * 1000)}
        producer.produce(pipeline.topic, json.dumps(value).encode(), on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(60) == 0
    return acked


COUNT_ROWS = """
SELECT count(*), count(DISTINCT event_id), coalesce(max(deliveries), 0) FROM events WHERE run_id = %s
"""


def wait_for_rows(pipeline: Pipeline, run_id: str, expected: int, timeout: float = 120) -> tuple[int, ...]:
    """(rows, distinct ids, max deliveries) once `expected` rows are in, or at the timeout."""
    deadline = time.monotonic() + timeout
    with pipeline.connect() as conn, conn.cursor() as cur:
        while True:
            cur.execute(COUNT_ROWS, (run_id,))
            rows, distinct, deliveries = cur.fetchone()
            if rows >= expected or time.monotonic() > deadline:
                return rows, distinct, deliveries
            time.sleep(1)


def quorum_status(pipeline: Pipeline) -> dict[str, str]:
    """Kafka's own `kafka-metadata-quorum describe --status`, run in a broker container."""
    code, out = pipeline.container("kafka-1").exec_run(
        [
            "sh",
            "-c",
            'java -cp "/opt/kafka/libs/*" org.apache.kafka.tools.MetadataQuorumCommand '
            "--bootstrap-server kafka-1:19092 describe --status",
        ]
    )
    assert code == 0, out.decode()[-2000:]
    return dict(line.split(":", 1) for line in out.decode().splitlines() if ":" in line)


def test_dedicated_controllers_hold_the_quorum_and_brokers_observe(pipeline: Pipeline) -> None:
    status = quorum_status(pipeline)
    voters = {v["id"] for v in json.loads(status["CurrentVoters"])}
    observers = {o["id"] for o in json.loads(status["CurrentObservers"])}
    assert voters == {101, 102, 103}
    assert observers == {1, 2, 3}
    assert int(status["LeaderId"]) in voters
    # A controller has no client listener: on the host only its metrics port (JMX exporter) is published.
    controller = pipeline.container("kafka-controller-1")
    assert controller.status == "running"
    bindings = controller.attrs["HostConfig"]["PortBindings"] or {}
    assert set(bindings) <= {"9404/tcp"}, bindings
    assert all(b["HostIp"] == "127.0.0.1" for binds in bindings.values() for b in binds), bindings


def test_three_brokers_and_full_isr(pipeline: Pipeline) -> None:
    meta = AdminClient({"bootstrap.servers": pipeline.bootstrap_servers}).list_topics(timeout=10)
    assert sorted(meta.brokers) == [1, 2, 3]
    partitions = meta.topics[pipeline.topic].partitions
    assert len(partitions) >= 3
    for part in partitions.values():
        assert len(part.replicas) == 3
        assert sorted(part.isrs) == [1, 2, 3], f"partition {part.id} ISR {part.isrs}"


def test_topic_and_broker_durability_settings(pipeline: Pipeline) -> None:
    from confluent_kafka.admin import ConfigResource

    admin = AdminClient({"bootstrap.servers": pipeline.bootstrap_servers})
    topic = ConfigResource(ConfigResource.Type.TOPIC, pipeline.topic)
    configs = admin.describe_configs([topic])[topic].result(timeout=10)
    assert configs["min.insync.replicas"].value == "2"
    assert configs["unclean.leader.election.enable"].value == "false"


def test_thousand_events_land_exactly_once(pipeline: Pipeline) -> None:
    run_id = f"test-once-{uuid.uuid4().hex[:8]}"
    assert produce(pipeline, run_id, range(1000)) == 1000
    rows, distinct, deliveries = wait_for_rows(pipeline, run_id, 1000)
    assert (rows, distinct, deliveries) == (1000, 1000, 1)
    with pipeline.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT min(event_id), max(event_id) FROM events WHERE run_id = %s", (run_id,))
        assert cur.fetchone() == (0, 999)
        # Latency is measurable: every row has a commit time after its production time.
        cur.execute("SELECT count(*) FROM events WHERE run_id = %s AND committed_at < produced_at", (run_id,))
        assert cur.fetchone()[0] == 0


def test_spark_restart_resumes_from_checkpoint(pipeline: Pipeline) -> None:
    run_id = f"test-restart-{uuid.uuid4().hex[:8]}"
    assert produce(pipeline, run_id, range(500)) == 500
    spark = pipeline.container("spark")
    spark.kill()  # SIGKILL: no graceful shutdown, the checkpoint is all it has
    # Events produced while the job is down wait in Kafka.
    assert produce(pipeline, run_id, range(500, 1000)) == 1000 - 500
    spark.start()
    rows, distinct, deliveries = wait_for_rows(pipeline, run_id, 1000, timeout=180)
    assert (rows, distinct, deliveries) == (1000, 1000, 1)
    # Nothing more arrives later: the count stays exact.
    time.sleep(5)
    assert wait_for_rows(pipeline, run_id, 1001, timeout=0)[0] == 1000


def test_site_is_idempotent(pipeline: Pipeline) -> None:
    result = run_playbook("playbooks/site.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    changed = recap_changed(result.stdout)
    assert changed, result.stdout[-2000:]
    assert set(changed.values()) == {0}, changed


def test_site_sets_this_checkouts_password_on_a_kept_volume(pipeline: Pipeline) -> None:
    # As if the data volume came from another checkout: the role's password is not ours any more.
    other = uuid.uuid4().hex
    exit_code, output = pipeline.container("postgres").exec_run(
        [
            "psql",
            "-X",
            "-q",
            "-U",
            "chaosbed",
            "-d",
            "postgres",
            "-c",
            f"ALTER ROLE chaosbed PASSWORD '{other}'",
        ],
        user="postgres",
    )
    assert exit_code == 0, output
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        pipeline.connect().close()
    result = run_playbook("playbooks/site.yml", "--limit", "localhost,postgres")
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap_changed(result.stdout)["postgres"] == 1, result.stdout[-2000:]
    with pipeline.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM events")
        assert cur.fetchone() is not None


def test_spark_driver_maps_the_class_data_archive(pipeline: Pipeline) -> None:
    # The image's CDS archive is in use only if the driver JVM mapped it: a mismatch falls back silently.
    # `if`, not `&&`: the loop's exit status must not depend on whether the last pid is java.
    script = (
        "for p in /proc/[0-9]*; do"
        " if grep -qx java $p/comm 2>/dev/null; then grep -c spark.jsa $p/maps; fi; done"
    )
    exit_code, output = pipeline.container("spark").exec_run(["sh", "-c", script])
    counts = [int(n) for n in output.decode().split()]
    assert exit_code == 0 and counts, output
    assert all(n > 0 for n in counts), output
