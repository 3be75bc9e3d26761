"""Time `tools validate` on a synthetic run of N ids (default 10 million) in a real PostgreSQL and Kafka.

    .venv/bin/python benchmarks/validate_scale.py [--ids 10000000] [--postgres-dsn DSN] [--no-kafka]

Without --postgres-dsn a throwaway server is started (tests/fixtures/postgres.py). The run has a
realistic ledger (acks in sticky-partitioner batches over 3 partitions, a killed session's
indeterminate block, a few definite failures) and sink rows with planted anomalies, so the
benchmark also checks the counts. Unless --no-kafka, a throwaway broker (tests/fixtures/kafka.py)
gets every acked id at exactly its acknowledged offset, the sink gets one batch-offsets record per
1 % of each partition, and the full check is timed: the Kafka log audit (its rate in records/s) and
the layered validation, which must place the planted missing ids at the Spark layer (skipped).
Prints the times in seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from confluent_kafka import Producer  # noqa: E402
from fixtures.kafka import running_kafka  # noqa: E402
from fixtures.postgres import running_postgres  # noqa: E402

from tools.audit import audit_log, value_prefix  # noqa: E402
from tools.ledger import LEDGER_FILE, load_ledger  # noqa: E402
from tools.pgconn import connect  # noqa: E402
from tools.run import meta  # noqa: E402
from tools.validation import validate_run  # noqa: E402

RUN_ID = "bench-scale"
PLANTED = {"missing": 7, "extra": 5, "duplicate": 11}


def write_ledger(run_dir: Path, n_ids: int, seed: int = 7) -> tuple[int, int]:
    """Acks in batches of 50-500 ids over 3 partitions; the last 1% indeterminate, 10 failed."""
    rng = random.Random(seed)
    offsets = [0, 0, 0]
    ts = 1_800_000_000_000
    indet = n_ids // 100
    failed = 10
    acked_end = n_ids - indet - failed
    lines = [f"chaosbed-ledger 1 {RUN_ID}\n", f"S {ts} 1 1\n", f"R {ts} 0 {n_ids - 1}\n"]
    i = 0
    while i < acked_end:
        size = min(rng.randint(50, 500), acked_end - i)
        part = rng.randrange(3)
        lines.append(f"A {ts} {i} {i + size - 1} {part} {offsets[part]}\n")
        offsets[part] += size
        i += size
        ts += 1
    lines.append(f"F {ts} {acked_end} {acked_end + failed - 1} MSG_SIZE_TOO_LARGE\n")
    (run_dir / LEDGER_FILE).write_text("".join(lines))
    return acked_end, indet


def load_rows(dsn: str, run_dir: Path, n_ids: int, acked_end: int, indet: int) -> None:
    """Sink rows for every acked id plus half the indeterminate ones; then plant the anomalies."""
    state = load_ledger(run_dir)
    with contextlib.closing(psycopg2.connect(dsn)) as conn, conn, conn.cursor() as cur:
        cur.execute("DELETE FROM events WHERE run_id = %s", (RUN_ID,))
        cur.execute("DELETE FROM sink_batches WHERE query_id = 'q'")
        cur.execute("CREATE TEMP TABLE acks (lo bigint, hi bigint, part int, off bigint)")
        cur.executemany(
            "INSERT INTO acks VALUES (%s, %s, %s, %s)",
            [(a.first, a.last, a.partition, a.offset) for a in state.acks],
        )
        cur.execute("ALTER TABLE events SET UNLOGGED")  # benchmark data: skip WAL for the bulk load
        cur.execute(
            """INSERT INTO events (run_id, event_id, topic, kafka_partition, kafka_offset, produced_at,
                                   committed_at, query_id, batch_id)
               SELECT %s, g, 'events', a.part, a.off + (g - a.lo), now(), now(), 'q', g / 10000
               FROM acks a, generate_series(a.lo, a.hi) g""",
            (RUN_ID,),
        )
        first_indet = n_ids - indet
        cur.execute(
            """INSERT INTO events (run_id, event_id, topic, kafka_partition, kafka_offset, produced_at,
                                   query_id, batch_id)
               SELECT %s, g, 'events', 0, 0, now(), 'q', 0 FROM generate_series(%s, %s, 2) g""",
            (RUN_ID, first_indet, n_ids - 1),
        )
        cur.execute(
            "DELETE FROM events WHERE run_id = %s"
            " AND event_id IN (SELECT (g * 9973) %% %s FROM generate_series(1, %s) g)",
            (RUN_ID, acked_end, PLANTED["missing"]),
        )
        cur.execute(
            """INSERT INTO events (run_id, event_id, topic, kafka_partition, kafka_offset, produced_at,
                                   query_id, batch_id)
               SELECT %s, %s + g, 'events', 0, 0, now(), 'q', 0 FROM generate_series(1, %s) g""",
            (RUN_ID, n_ids + 1000, PLANTED["extra"]),
        )
        cur.execute(
            "UPDATE events SET deliveries = 2 WHERE run_id = %s AND event_id IN "
            "(SELECT 1000 + (g * 7919) %% %s FROM generate_series(1, %s) g)",
            (RUN_ID, acked_end - 2000, PLANTED["duplicate"]),
        )
        # One audit row per sink batch (10,000 ids each); two replayed batches, two absorbed rows.
        cur.execute(
            """INSERT INTO sink_batches (query_id, batch_id, rows_staged, rows_inserted, replays)
               SELECT 'q', b, 10000 + (b = 7)::int * 2, 10000, (b IN (3, 5))::int
               FROM generate_series(0, %s) b""",
            (n_ids // 10000,),
        )
        cur.execute("ALTER TABLE events SET LOGGED")
    with contextlib.closing(psycopg2.connect(dsn)) as conn:
        conn.autocommit = True
        conn.cursor().execute("VACUUM ANALYZE events")


def produce_log(bootstrap: str, topic: str, run_dir: Path) -> dict[int, int]:
    """Every acked id at its acknowledged offset: ranges sent in ledger order to their partition by one
    idempotent producer (so offsets follow send order). Returns the end offset per partition."""
    state = load_ledger(run_dir)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 50,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    head = value_prefix(RUN_ID)
    ends: dict[int, int] = {}
    for a in state.acks:
        for i in range(a.first, a.last + 1):
            while True:
                try:
                    producer.produce(
                        topic, head + b'%d,"produced_at_ms":1800000000000}' % i, partition=a.partition
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
        ends[a.partition] = a.offset + a.last - a.first + 1
    if producer.flush(300):
        raise SystemExit("Kafka did not take every record")
    return ends


def record_batches(dsn: str, ends: dict[int, int], batches: int = 100) -> None:
    """One sink batch-offsets record per 1 % of each partition, as the job records them."""
    with contextlib.closing(psycopg2.connect(dsn)) as conn, conn, conn.cursor() as cur:
        cur.execute("DELETE FROM sink_batch_reads WHERE query_id = 'q'")
        for b in range(batches):
            start = {str(p): e * b // batches for p, e in ends.items()}
            end = {str(p): e * (b + 1) // batches for p, e in ends.items()}
            cur.execute(
                "INSERT INTO sink_batches (query_id, batch_id, rows_staged, rows_inserted)"
                " VALUES ('q', %s, 0, 0) ON CONFLICT DO NOTHING",
                (b,),
            )
            cur.execute(
                "INSERT INTO sink_batch_reads (query_id, batch_id, execution, start_offsets, end_offsets,"
                " rows_read) VALUES ('q', %s, 0, %s, %s, 0)",
                (b, json.dumps(start), json.dumps(end)),
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ids", type=int, default=10_000_000)
    parser.add_argument("--postgres-dsn", help="an existing database with schema.sql applied")
    parser.add_argument("--no-kafka", action="store_true", help="time the sink checks only (no log audit)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        dsn = args.postgres_dsn
        if not dsn:
            server = stack.enter_context(running_postgres())
            dsn = server.create_database("bench")
        root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        run_dir = meta.create_run(root / RUN_ID, postgres_dsn=dsn)
        t = time.monotonic()
        acked_end, indet = write_ledger(run_dir, args.ids)
        load_rows(dsn, run_dir, args.ids, acked_end, indet)
        print(f"loaded {args.ids:,} ids in {time.monotonic() - t:.1f}s", file=sys.stderr)
        kafka = None
        if not args.no_kafka:
            kafka = stack.enter_context(running_kafka(partitions=3))
            topic = kafka.create_topic("bench-scale")
            t = time.monotonic()
            ends = produce_log(kafka.bootstrap, topic, run_dir)
            record_batches(dsn, ends)
            print(f"produced {sum(ends.values()):,} records in {time.monotonic() - t:.1f}s", file=sys.stderr)

        t = time.monotonic()
        state = load_ledger(run_dir)
        t_ledger = time.monotonic() - t
        with contextlib.closing(connect(dsn)) as conn:
            audit = None
            if kafka is not None:
                audit = audit_log(conn, RUN_ID, kafka.bootstrap, topic, timeout_s=600)
            t_check = time.monotonic()
            result = validate_run(conn, RUN_ID, state, "events", audited=audit is not None)
        elapsed = time.monotonic() - t
        print(
            f"ledger parse {t_ledger:.1f}s, {len(state.acks):,} ack ranges; missing={result.missing_count} "
            f"extra={result.extra_count} duplicate={result.duplicate_count} "
            f"indeterminate_present={result.indeterminate_present} failed_present={result.failed_present}",
            file=sys.stderr,
        )
        expected = (PLANTED["missing"], PLANTED["extra"], PLANTED["duplicate"])
        got = (result.missing_count, result.extra_count, result.duplicate_count)
        if (
            got != expected
            or result.indeterminate_present != (indet + 1) // 2
            or (result.replays_absorbed, result.upsert_absorbed_rows) != (2, 2)
        ):
            raise SystemExit(f"wrong counts: got {got}, planted {expected}")
        layered = {n: c["count"] for n, c in result.layers["classes"].items() if c["count"]}
        want = {"duplicate": 11, "extra": 5, "indeterminate": (indet + 1) // 2}
        if audit is not None:
            # The two replayed batches load_rows records: information at the Spark layer.
            want.update({"skipped": PLANTED["missing"], "sink-ahead-of-checkpoint": 2})
        if layered != want:
            raise SystemExit(f"wrong layered counts: got {layered}, planted {want}")
        print(
            f"validate_seconds={elapsed:.2f} ids={args.ids} checks_seconds={time.monotonic() - t_check:.2f}"
        )
        if audit is not None:
            print(
                f"audit_seconds={audit.seconds:.2f} audit_records={audit.records_read}"
                f" audit_rate={audit.rate:,.0f}/s"
            )


if __name__ == "__main__":
    main()
