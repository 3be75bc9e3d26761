"""The layered checker against a real Kafka broker and a real PostgreSQL: a clean run has no anomaly,
and each class fires when its anomaly is planted (a log-audited row deleted, a batch's offsets record
corrupted, a duplicate written...).

A run here: events produced to a new topic with the producer's value format and its ledger; the log
read back and handed to the real Spark sink class (spark_job.sink) in three batches per partition,
each recording the offsets it read, as the job does from its checkpoint.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from fixtures.kafka import KafkaBroker
from fixtures.produced import RUN, produce
from fixtures.sink import Row, execute, insert_rows

from spark_job.sink import PostgresSink
from tools.audit import audit_log
from tools.ledger import LedgerWriter, load_ledger
from tools.validation import ValidationResult, validate_run

EVENTS = 300
QUERY = "q-layers"


@dataclass
class Bed:
    dsn: str
    broker: KafkaBroker
    topic: str
    run_dir: Path
    sink: PostgresSink
    # (partition, offset) -> event id, as produced
    log: dict[tuple[int, int], int]
    batches: list[tuple[dict[str, int], dict[str, int], list[tuple[str, int, str, int, int, int]]]]

    def sql(self, statement: str, params: tuple[object, ...] = ()) -> None:
        execute(self.dsn, statement, params)

    def validate(self, audit: bool = True) -> ValidationResult:
        with contextlib.closing(psycopg2.connect(self.dsn)) as conn:
            if audit:
                audit_log(conn, RUN, self.broker.bootstrap, self.topic)
            return validate_run(conn, RUN, load_ledger(self.run_dir), "events", audited=True)

    def position(self, event_id: int) -> tuple[int, int]:
        return next(pos for pos, i in self.log.items() if i == event_id)


@pytest.fixture
def bed(tmp_path: Path, fresh_pg_dsn: str, kafka_broker: KafkaBroker, kafka_topic: str) -> Iterator[Bed]:
    log = produce(kafka_broker, kafka_topic, tmp_path, 0, EVENTS)
    ends = kafka_broker.end_offsets(kafka_topic)
    sink = PostgresSink(fresh_pg_dsn, retry_seconds=5)
    batches = []
    for k in range(3):
        start = {str(p): e * k // 3 for p, e in ends.items()}
        end = {str(p): e * (k + 1) // 3 for p, e in ends.items()}
        rows = [
            (RUN, i, kafka_topic, p, o, 1_800_000_000_000)
            for (p, o), i in sorted(log.items())
            if start[str(p)] <= o < end[str(p)]
        ]
        sink.write(QUERY, k, rows, (start, end))
        batches.append((start, end, rows))
    yield Bed(fresh_pg_dsn, kafka_broker, kafka_topic, tmp_path, sink, log, batches)


def classes(result: ValidationResult) -> dict[str, int]:
    return {name: c["count"] for name, c in result.layers["classes"].items() if c["count"]}


def test_a_clean_run_has_no_anomaly_and_the_audit_holds_every_id(bed: Bed) -> None:
    result = bed.validate()
    assert result.valid, result.problems
    assert classes(result) == {}
    assert result.layers["audited"] and not result.layers["notes"]
    with contextlib.closing(psycopg2.connect(bed.dsn)) as conn, conn.cursor() as cur:
        cur.execute("SELECT kafka_partition, kafka_offset, event_id FROM kafka_log WHERE run_id = %s", (RUN,))
        assert {(p, o): i for p, o, i in cur.fetchall()} == bed.log


def plant_lost_write(bed: Bed) -> None:
    # Kafka lost a record in the middle of partition 0 (a higher offset was read).
    bed.sql("DELETE FROM kafka_log WHERE run_id = %s AND kafka_partition = 0 AND kafka_offset = 5", (RUN,))


def plant_log_absent(bed: Bed) -> None:
    bed.sql(
        "DELETE FROM kafka_log WHERE run_id = %s AND kafka_partition = 0 AND kafka_offset ="
        " (SELECT max(kafka_offset) FROM kafka_log WHERE run_id = %s AND kafka_partition = 0)",
        (RUN, RUN),
    )


def plant_inconsistent_offset(bed: Bed) -> None:
    # Two records of partition 1 swap places: each id sits at a position it was not acknowledged at.
    bed.sql(
        "UPDATE kafka_log SET event_id = CASE kafka_offset WHEN 3 THEN %s ELSE %s END"
        " WHERE run_id = %s AND kafka_partition = 1 AND kafka_offset IN (3, 4)",
        (bed.log[(1, 4)], bed.log[(1, 3)], RUN),
    )


def plant_log_duplicate(bed: Bed) -> None:
    event_id = bed.log[(2, 1)]
    bed.sql("INSERT INTO kafka_log VALUES (%s, 2, 100000, %s)", (RUN, event_id))


def plant_skipped(bed: Bed) -> None:
    # The sink lost an id that batch 1 read.
    _start, _end, rows = bed.batches[1]
    bed.sql("DELETE FROM events WHERE run_id = %s AND event_id = %s", (RUN, rows[0][1]))


def plant_offset_gap(bed: Bed) -> None:
    bed.sql(
        "UPDATE sink_batch_reads SET start_offsets = jsonb_set(start_offsets, '{0}',"
        " to_jsonb((start_offsets->>'0')::bigint + 2)) WHERE query_id = %s AND batch_id = 1",
        (QUERY,),
    )


def plant_offset_overlap(bed: Bed) -> None:
    bed.sql(
        "UPDATE sink_batch_reads SET start_offsets = jsonb_set(start_offsets, '{0}',"
        " to_jsonb((start_offsets->>'0')::bigint - 2)) WHERE query_id = %s AND batch_id = 2",
        (QUERY,),
    )


def plant_unread(bed: Bed) -> None:
    # More events reach Kafka after the last batch; nothing reads them.
    produce(bed.broker, bed.topic, bed.run_dir, EVENTS, 5)


def plant_sink_ahead(bed: Bed) -> None:
    start, end, rows = bed.batches[2]
    bed.sink.write(QUERY, 2, rows, (start, end))  # Spark ran the committed batch again: absorbed


def plant_replay_divergence(bed: Bed) -> None:
    start, end, rows = bed.batches[2]
    bed.sink.write(QUERY, 2, rows[:-1], (start, end))


def plant_duplicate(bed: Bed) -> None:
    bed.sql("UPDATE events SET deliveries = 2 WHERE run_id = %s AND event_id = 7", (RUN,))


def plant_extra(bed: Bed) -> None:
    insert_rows(bed.dsn, RUN, [Row(10_000)])


def plant_failed_present(bed: Bed) -> None:
    writer = LedgerWriter(bed.run_dir, RUN, fsync=False)
    lo, _hi = writer.reserve(1)
    writer.fail(lo, "MSG_SIZE_TOO_LARGE")
    writer.close(lo + 1)
    insert_rows(bed.dsn, RUN, [Row(lo)])


PLANTS: dict[str, tuple[Callable[[Bed], None], dict[str, int]]] = {
    "lost-write": (plant_lost_write, {"lost-write": 1}),
    "log-absent": (plant_log_absent, {"log-absent": 1}),
    "inconsistent-offset": (plant_inconsistent_offset, {"inconsistent-offset": 2}),
    "log-duplicate": (plant_log_duplicate, {"log-duplicate": 1}),
    "skipped": (plant_skipped, {"skipped": 1}),
    "offset-gap": (plant_offset_gap, {"offset-gap": 1}),
    "offset-overlap": (plant_offset_overlap, {"offset-overlap": 1}),
    "unread": (plant_unread, {"unread": 5}),
    "sink-ahead-of-checkpoint": (plant_sink_ahead, {"sink-ahead-of-checkpoint": 1}),
    "replay-divergence": (plant_replay_divergence, {"sink-ahead-of-checkpoint": 1, "replay-divergence": 1}),
    "duplicate": (plant_duplicate, {"duplicate": 1}),
    "extra": (plant_extra, {"extra": 1}),
    "failed-present": (plant_failed_present, {"failed-present": 1}),
}

# Plants that change the audited log itself: validated without auditing again.
LOG_PLANTS = {"lost-write", "log-absent", "inconsistent-offset", "log-duplicate"}


@pytest.mark.parametrize("name", list(PLANTS))
def test_each_class_fires_when_planted(bed: Bed, name: str) -> None:
    plant, expected = PLANTS[name]
    if name in LOG_PLANTS:
        with contextlib.closing(psycopg2.connect(bed.dsn)) as conn:
            audit_log(conn, RUN, bed.broker.bootstrap, bed.topic)
    plant(bed)
    result = bed.validate(audit=name not in LOG_PLANTS)
    assert classes(result) == expected, result.layers["classes"]
    witnesses = result.layers["classes"][name]["witnesses"]
    assert witnesses, name
    print(name, witnesses[0])
    # Only the information classes leave the run valid.
    assert result.valid == all(result.layers["classes"][c]["allowed"] for c in expected), result.problems


def test_the_audit_starts_at_the_runs_start_time(bed: Bed) -> None:
    """A shared topic holds earlier runs: from a time, each partition is read from its first record
    stamped at or after it; a time after every record reads nothing."""
    with contextlib.closing(psycopg2.connect(bed.dsn)) as conn:
        everything = audit_log(conn, RUN, bed.broker.bootstrap, bed.topic, since_ms=0)
        assert everything.run_records == EVENTS
        later = audit_log(
            conn, RUN, bed.broker.bootstrap, bed.topic, since_ms=int(time.time() * 1000) + 3_600_000
        )
    assert later.run_records == 0
    assert all(p.log_start == p.log_end for p in later.partitions)
