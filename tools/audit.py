"""The Kafka log audit: which event id of a run sits at each (partition, offset) of the run's topic.

After a run settles, a plain consumer (assigned every partition, never joining or committing to a
group) reads each partition from its log start (or from the run's start time, minus a margin: a shared
topic holds every earlier run) to the end offset it had when the audit began, and
the run's events go to PostgreSQL (`kafka_log`) with COPY; each partition's bounds go to
`kafka_log_audits`. The checker compares this log with the producer's acknowledgements (Kafka layer)
and with the offsets Spark's batches read (Spark layer): docs/checker.md.

Speed: values are matched on the producer's byte prefix for the run (no JSON parsing), and the COPY
runs in a second thread, so reading Kafka and writing PostgreSQL overlap.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from psycopg2.extensions import connection

from tools.errors import ToolError

# Records per COPY chunk: big enough that each COPY call's overhead vanishes.
CHUNK_RECORDS = 50_000

CONSUMER_CONFIG = {
    # librdkafka insists on a group id; assign() never joins it and nothing is committed.
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
    # Every record as the log holds it (the producer is not transactional).
    "isolation.level": "read_uncommitted",
    "fetch.max.bytes": 52_428_800,
    "max.partition.fetch.bytes": 10_485_760,
    # Prefetch deep: with librdkafka's 100,000 the fetcher idled while Python emptied the queue
    # (benchmarks/README.md, the audit rate).
    "queued.min.messages": 1_000_000,
    "queued.max.messages.kbytes": 262_144,
    "fetch.wait.max.ms": 50,
}


@dataclass
class PartitionAudit:
    partition: int
    log_start: int
    log_end: int
    records: int = 0


@dataclass
class AuditResult:
    run_id: str
    topic: str
    partitions: list[PartitionAudit] = field(default_factory=list)
    records_read: int = 0  # every record read, of any run
    run_records: int = 0  # this run's, written to kafka_log
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.records_read / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "records_read": self.records_read,
            "run_records": self.run_records,
            "seconds": round(self.seconds, 3),
            "partitions": [asdict(p) for p in self.partitions],
        }


def value_prefix(run_id: str) -> bytes:
    """The bytes every value of the run starts with (tools/producer.py writes them so)."""
    return b'{"run_id":' + json.dumps(run_id).encode() + b',"event_id":'


def audit_log(
    conn: connection,
    run_id: str,
    bootstrap_servers: str,
    topic: str,
    kafka_config: dict[str, Any] | None = None,
    timeout_s: float = 120.0,
    since_ms: int | None = None,
) -> AuditResult:
    """Read the topic's log and record the run's (partition, offset) -> event id, replacing any earlier
    audit of the run. From each partition's log start, or with since_ms from its first record stamped
    at or after since_ms (a shared topic holds every earlier run too). Raises ToolError when Kafka
    cannot be read."""
    started = time.monotonic()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"chaosbed-audit-{uuid.uuid4().hex}",
            **CONSUMER_CONFIG,
            **(kafka_config or {}),
        }
    )
    result = AuditResult(run_id, topic)
    try:
        bounds = _bounds(consumer, topic, timeout_s)
        if since_ms is not None:
            bounds = _since(consumer, topic, bounds, since_ms, timeout_s)
        result.partitions = [PartitionAudit(p, lo, hi) for p, (lo, hi) in sorted(bounds.items())]
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM kafka_log WHERE run_id = %s", (run_id,))
            cur.execute("DELETE FROM kafka_log_audits WHERE run_id = %s", (run_id,))
            _read_into(cur, consumer, run_id, topic, result, started + timeout_s)
            for p in result.partitions:
                cur.execute(
                    "INSERT INTO kafka_log_audits (run_id, topic, kafka_partition, log_start, log_end,"
                    " records) VALUES (%s, %s, %s, %s, %s, %s)",
                    (run_id, topic, p.partition, p.log_start, p.log_end, p.records),
                )
        with conn, conn.cursor() as cur:
            # Fresh statistics: the checker's plan reads the run's records in index order (no sort).
            cur.execute("ANALYZE kafka_log")
    finally:
        consumer.close()
    result.seconds = time.monotonic() - started
    return result


def _bounds(consumer: Consumer, topic: str, timeout_s: float) -> dict[int, tuple[int, int]]:
    try:
        md = consumer.list_topics(topic=topic, timeout=min(timeout_s, 15))
        meta = md.topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise ToolError(f"Kafka log audit: topic {topic!r} not found")
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=min(timeout_s, 15))
            for p in meta.partitions
        }
    except KafkaException as exc:
        raise ToolError(f"Kafka log audit: cannot read topic {topic!r}: {exc.args[0].str()}") from None


def _since(
    consumer: Consumer, topic: str, bounds: dict[int, tuple[int, int]], since_ms: int, timeout_s: float
) -> dict[int, tuple[int, int]]:
    """Each partition's start moved to its first record stamped at or after since_ms (none: its end)."""
    try:
        found = consumer.offsets_for_times(
            [TopicPartition(topic, p, since_ms) for p in sorted(bounds)], timeout=min(timeout_s, 15)
        )
    except KafkaException as exc:
        raise ToolError(f"Kafka log audit: cannot look up offsets by time: {exc.args[0].str()}") from None
    out = dict(bounds)
    for tp in found:
        lo, hi = bounds[tp.partition]
        out[tp.partition] = (hi if tp.offset < 0 else max(lo, min(tp.offset, hi)), hi)
    return out


def _read_into(
    cur: Any, consumer: Consumer, run_id: str, topic: str, result: AuditResult, deadline: float
) -> None:
    ends = {p.partition: p.log_end for p in result.partitions}
    per_partition = {p.partition: 0 for p in result.partitions}
    todo = {p.partition for p in result.partitions if p.log_end > p.log_start}
    if todo:
        starts = {p.partition: p.log_start for p in result.partitions}
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in sorted(todo)])
    prefix = value_prefix(run_id)
    at = len(prefix)
    run = run_id.encode()  # run ids need no COPY escaping (tools/run/layout.py allows [A-Za-z0-9._-])
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
    failure: list[BaseException] = []
    writer = threading.Thread(target=_copy_chunks, args=(cur, chunks, failure), daemon=True)
    writer.start()
    buf: list[bytes] = []
    read = 0
    try:
        while todo:
            if time.monotonic() > deadline:
                raise ToolError(
                    f"Kafka log audit: partitions {sorted(todo)} not read to their end offsets in time"
                )
            if failure:
                break
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                err = msg.error()
                part = msg.partition()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        if msg.offset() >= ends[part]:
                            todo.discard(part)
                        continue
                    raise ToolError(f"Kafka log audit: {err.str()}")
                off = msg.offset()
                if off >= ends[part]:
                    todo.discard(part)
                    continue
                read += 1
                if off + 1 >= ends[part]:
                    todo.discard(part)
                value = msg.value()
                if value is not None and value.startswith(prefix):
                    end = value.find(b",", at)
                    buf.append(b"%s\t%d\t%d\t%s\n" % (run, part, off, value[at:end]))
                    per_partition[part] += 1
                    if len(buf) >= CHUNK_RECORDS:
                        chunks.put(b"".join(buf))
                        buf = []
        if buf:
            chunks.put(b"".join(buf))
    finally:
        chunks.put(None)
        writer.join()
    if failure:
        raise failure[0]
    result.records_read = read
    result.run_records = sum(per_partition.values())
    for p in result.partitions:
        p.records = per_partition[p.partition]


def _copy_chunks(cur: Any, chunks: queue.Queue[bytes | None], failure: list[BaseException]) -> None:
    try:
        while (chunk := chunks.get()) is not None:
            if failure:
                continue
            cur.copy_expert(
                "COPY kafka_log (run_id, kafka_partition, kafka_offset, event_id) FROM STDIN", _Reader(chunk)
            )
    except BaseException as exc:  # handed to the reading thread, which raises it
        failure.append(exc)
        while chunks.get() is not None:
            pass


class _Reader:
    """A bytes chunk as the file object copy_expert reads."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._at = 0

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = len(self._data) - self._at
        out = self._data[self._at : self._at + size].tobytes()
        self._at += len(out)
        return out

    def readline(self, size: int = -1) -> bytes:  # pragma: no cover - copy_expert uses read()
        return self.read(size)
