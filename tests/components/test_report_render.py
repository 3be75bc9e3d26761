"""Report rendering from a synthetic run: every number must be the data's; gaps say so."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import psycopg2
import pytest
from fixtures.metrics import write_signal
from fixtures.sink import Row, execute, insert_rows

from tools.ledger import load_ledger
from tools.recovery import RecoveryParams
from tools.report.data import gather, save_sink_data
from tools.report.render import NOT_MEASURED, REPORT_FILE, write_report
from tools.run import meta
from tools.run.clock import iso_from_ms
from tools.validation import validate_run

T0 = 1_800_000_000  # epoch seconds: the synthetic run starts here
RUN = "rep-run"
PER_S = 100
SECONDS = 120


def ms(s: float) -> int:
    return int((T0 + s) * 1000)


def write_ledger(run_dir: Path) -> None:
    lines = [f"chaosbed-ledger 1 {RUN}", f"S {ms(0)} 1 4242", f"R {ms(0)} 0 {PER_S * SECONDS - 1}"]
    for s in range(SECONDS):
        lines.append(f"A {ms(s + 0.5)} {s * PER_S} {s * PER_S + PER_S - 1} {s % 3} {s // 3 * PER_S}")
    lines.append(f"C {ms(SECONDS)} {PER_S * SECONDS}")
    (run_dir / "ledger.log").write_text("\n".join(lines) + "\n")


def rows() -> list[Row]:
    """100 ms latency, except: nothing commits during 60..74 s, the backlog lands at 75 s."""
    out = []
    for i in range(PER_S * SECONDS):
        s = i // PER_S
        produced = ms(s) + (i % PER_S) * 10
        committed = produced + 100 if s < 60 or s >= 75 else ms(75) + (i % PER_S)
        out.append(Row(i, s % 3, s // 3 * PER_S + i % PER_S, produced, committed, batch_id=s))
    return out


def write_timeline(run_dir: Path) -> None:
    records = [
        {
            "fault_id": "f1",
            "kind": "kafka-outage",
            "target": "kafka-1",
            "params": {"duration": "10s"},
            "executor": "docker",
            "start": iso_from_ms(ms(60)),
            "end": iso_from_ms(ms(70)),
            "start_ms": ms(60),
            "end_ms": ms(70),
            "outcome": "ok",
        },
        {
            "fault_id": "f2",
            "kind": "spark-kill",
            "target": "spark",
            "params": {},
            "executor": "pumba",
            "start": iso_from_ms(ms(100)),
            "end": iso_from_ms(ms(101)),
            "outcome": "ok",
        },
        # Begins while f1 is active: its recovery includes f1's effect, and the report says so.
        {"fault_id": "f0", "kind": "spark-pause", "target": "spark", "executor": "docker",
         "start_ms": ms(62), "end_ms": ms(64), "outcome": "ok"},
        # Never applied: shown, but kept out of the per-kind statistics.
        {"fault_id": "f3", "kind": "netem delay", "target": "kafka-3", "executor": "docker",
         "start_ms": ms(105), "end_ms": ms(105.5), "outcome": "unsupported"},
    ]  # fmt: skip
    torn = '{"fault_id": "f4", "kind": "tor'  # the injector was killed mid-write
    text = "".join(json.dumps(r) + "\n" for r in records) + torn
    (run_dir / "timeline.jsonl").write_text(text)


@pytest.fixture
def full_run(tmp_path: Path, fresh_pg_dsn: str) -> Path:
    run_dir = meta.create_run(
        tmp_path / RUN,
        bootstrap_servers="kafka-1:9092",
        topic="events",
        postgres_dsn=fresh_pg_dsn,
        versions={"kafka": "4.4.0", "spark": "4.0.0"},
        topology={"brokers": 3},
        settings={"min_isr": 2},
    )
    meta.update_run(
        run_dir,
        started_at=iso_from_ms(ms(0)),
        ended_at=iso_from_ms(ms(SECONDS)),
        settings={"producer": {"rate": 100.0}},
    )
    write_ledger(run_dir)
    write_timeline(run_dir)
    insert_rows(fresh_pg_dsn, RUN, rows())
    execute(
        fresh_pg_dsn,
        "INSERT INTO spark_progress (query_id, batch_id, reported_at, num_input_rows, batch_duration_ms,"
        " processed_rows_per_second) SELECT 'q1', g, to_timestamp(%s + g), 100, 200 + g, 500.0"
        " FROM generate_series(0, 9) g",
        (T0,),
    )
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn:
        result = validate_run(conn, RUN, load_ledger(run_dir), "events")
    meta.write_json_atomic(run_dir / "validation.json", result.to_json())
    return run_dir


def render(run_dir: Path, dsn: str | None) -> str:
    if dsn is None:
        data = gather(run_dir, None, RecoveryParams())
    else:
        with contextlib.closing(psycopg2.connect(dsn)) as conn:
            data = gather(run_dir, conn, RecoveryParams())
    return write_report(data).read_text()


def section(text: str, title: str) -> str:
    """The body of one `## ` section."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, title
    return match.group(1)


def test_full_report_numbers_come_from_the_data(full_run: Path, fresh_pg_dsn: str) -> None:
    text = render(full_run, fresh_pg_dsn)
    assert (full_run / REPORT_FILE).exists()
    # Ledger numbers
    assert "| Acknowledged (acks=all) | 12,000 |" in text
    assert "| Attempted ids | 12,000 |" in text
    assert "| Requested rate | 100.0 events/s |" in text
    # Recovery: backlog lands at 75 s, healthy from 76 s; fault 1 started at 60 s, ended at 70 s.
    recovery = section(text, "3. Recovery time measurements")
    assert "| f1 | kafka-outage | kafka-1 | 16.0 s | 6.0 s |" in recovery
    assert "| f2 | spark-kill | spark | 0.0 s | no degradation |" in recovery
    assert "p99 latency 100 ms" in recovery and "threshold 1,100 ms" in recovery
    assert "| kafka-outage | kafka | 1 | 1 | 16.0 s | 16.0 s | 16.0 s |" in recovery
    # Sink numbers, checked against an independent query
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), max(extract(epoch FROM committed_at - produced_at) * 1000)"
            " FROM events WHERE run_id = %s",
            (RUN,),
        )
        count, max_lat = cur.fetchone()
    latency = section(text, "4. Throughput and latency")
    assert f"| Rows committed to `events` | {count:,} |" in latency
    assert f"| End-to-end latency max | {max_lat:,.0f} ms |" in latency
    assert "| End-to-end latency p50 | 100 ms |" in latency
    assert "10 progress events" in latency and "batch duration p50" in latency
    # Integrity from validation.json
    integrity = section(text, "5. Data integrity results")
    assert "| missing (acked, absent) | 0 | must be 0 |" in integrity
    assert "**Verdict: VALID**" in integrity
    # Chaos table, observed behaviour: nothing committed during f1's window
    chaos = section(text, "2. Chaos scenarios")
    assert "| f1 | kafka-outage | kafka-1 | docker | +60.0 s" in chaos
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM events WHERE run_id = %s AND committed_at >= to_timestamp(%s)"
            " AND committed_at < to_timestamp(%s)",
            (RUN, T0 + 60, T0 + 70),
        )
        during = cur.fetchone()[0] / 10
    assert f"| f1 | kafka-outage | {during:,.1f}/s |" in chaos
    assert "line 5 skipped" in text  # the torn timeline line is reported, not silently dropped
    assert "| f0 | spark-pause | spark | 14.0 s | 12.0 s |" in recovery
    assert "began before f1 ended or recovered (not declared concurrent): includes its effect |" in recovery
    assert "| f3 | netem delay | kafka-3 | 0.0 s |" in recovery
    assert "outcome `unsupported`: may not have been applied; not in the per-kind statistics |" in recovery
    assert "| netem delay |" not in recovery.split("Per fault kind")[1]
    conclusion = section(text, "7. Conclusion")
    assert "Recovery: 3 of 3 applied faults recovered within the run." in conclusion
    assert "1 fault(s) with another outcome (possibly not applied) are not counted." in conclusion
    assert "1 began before an earlier fault had recovered" in conclusion
    # Plots exist, are PNGs, and are linked relatively
    for name in ("throughput.png", "latency.png", "recovery_time.png"):
        assert (full_run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in text
    assert "KNOWN-UNSAFE" not in text
    assert NOT_MEASURED not in section(text, "5. Data integrity results")


def test_missing_data_says_not_measured(tmp_path: Path, fresh_pg_dsn: str) -> None:
    run_dir = meta.create_run(tmp_path / "empty-run", postgres_dsn=fresh_pg_dsn)
    text = render(run_dir, fresh_pg_dsn)
    for title in (
        "1. Experiment setup",
        "2. Chaos scenarios",
        "3. Recovery time measurements",
        "4. Throughput and latency",
        "5. Data integrity results",
    ):
        assert NOT_MEASURED in section(text, title), title
    assert "Producer ledger: not measured in this run" in text
    assert not list(run_dir.glob("*.png"))
    assert ".png)" not in text


def test_unsafe_profile_is_labelled(full_run: Path, fresh_pg_dsn: str) -> None:
    meta.update_run(full_run, profile="unsafe-sink")
    text = render(full_run, fresh_pg_dsn)
    head = text.split("## Overview")[0]
    assert "KNOWN-UNSAFE CONFIGURATION: profile `unsafe-sink`" in head
    assert "known-unsafe profile `unsafe-sink`" in section(text, "7. Conclusion")


def test_offline_report_marks_sink_sections(full_run: Path) -> None:
    text = render(full_run, None)
    assert "Sink throughput and latency: not measured in this run" in text
    assert "Recovery time: not measured in this run (the sink was not queried (`--offline`)" in text
    assert "| Acknowledged (acks=all) | 12,000 |" in text  # ledger facts need no database


def test_invalid_validation_is_reported_with_problems(full_run: Path, fresh_pg_dsn: str) -> None:
    execute(fresh_pg_dsn, "DELETE FROM events WHERE run_id = %s AND event_id IN (5, 6)", (RUN,))
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn:
        result = validate_run(conn, RUN, load_ledger(full_run), "events")
    meta.write_json_atomic(full_run / "validation.json", result.to_json())
    text = render(full_run, fresh_pg_dsn)
    assert "**Verdict: INVALID**: 2 acknowledged ids missing (lost)" in text
    assert "- missing: 5, 6" in text
    assert "Data integrity: INVALID: 2 acknowledged ids missing (lost)." in section(text, "7. Conclusion")


def _window(fid: str, target: str, start_s: float, end_s: float) -> dict[str, object]:
    return {"fault_id": f"{RUN}/{fid}", "kind": "kill", "target": target, "executor": "docker",
            "start_ms": ms(start_s), "end_ms": ms(end_s), "outcome": "ok"}  # fmt: skip


def test_recovery_per_kind_and_service_in_words(full_run: Path, fresh_pg_dsn: str) -> None:
    """Three SIGKILLs of three services get three rows; no negative durations; declared overlap named."""
    records = [
        _window("01-kafka-2", "kafka-2", 58, 62),  # recovers at 76 s: 14 s after its end
        _window("02-spark", "spark", 60, 80),  # healthy again at 76 s, while still active
        _window("03-producer", "producer", 100, 101),  # never left the healthy state
    ]
    (full_run / "timeline.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    plan = {"faults": [
        {"id": "01-kafka-2", "name": "broker kill", "concurrent_with": None},
        {"id": "02-spark", "name": "spark kill", "concurrent_with": "broker kill"},
        {"id": "03-producer", "name": "producer kill", "concurrent_with": None},
    ]}  # fmt: skip
    (full_run / "plan.json").write_text(json.dumps(plan))
    recovery = section(render(full_run, fresh_pg_dsn), "3. Recovery time measurements")
    per_service = recovery.split("Per fault kind and service")[1]
    for service, seconds in (("kafka", "18.0 s"), ("spark", "16.0 s"), ("producer", "0.0 s")):
        assert f"| kill | {service} | 1 | 1 | {seconds} | {seconds} | {seconds} |" in per_service, service
    assert "| kill | 3 |" not in per_service and "| kill | kafka | 3" not in per_service
    assert f"| {RUN}/01-kafka-2 | kill | kafka-2 | 18.0 s | 14.0 s |" in recovery
    assert f"| {RUN}/02-spark | kill | spark | 16.0 s | recovered before the fault ended |" in recovery
    assert f"| {RUN}/03-producer | kill | producer | 0.0 s | no degradation |" in recovery
    assert not re.search(r"\| -\d", recovery), recovery  # no negative duration anywhere
    assert "declared concurrent (meant to overlap): 01-kafka-2 (broker kill) with 02-spark (spark kill)" in (
        " ".join(recovery.split())
    )
    assert f"declared concurrent with {RUN}/01-kafka-2: includes its effect" in recovery


def test_component_signals_per_fault(full_run: Path, fresh_pg_dsn: str) -> None:
    """Saved metrics give each fault its component lines and a plot; without metrics/ one line says so."""
    assert "this run saved no Prometheus metrics (no `metrics/` directory)" in render(full_run, fresh_pg_dsn)
    steps = range(0, SECONDS + 1, 2)
    urp = [(T0 + s, 2 if 62 <= s < 78 else 0) for s in steps]  # f1 (60..70 s) leaves 2 partitions short
    write_signal(full_run, "kafka_under_replicated_partitions", "kafka", "count",
                 [({"service": "kafka-1"}, urp)], "under-replicated partitions")  # fmt: skip
    write_signal(
        full_run, "pg_connections", "postgres", "count", [({}, [(T0 + s, 4) for s in steps])], "connections"
    )
    text = render(full_run, fresh_pg_dsn)
    chaos = section(text, "2. Chaos scenarios")
    kafka = chaos.split("#### Kafka brokers and controllers")[1].split("#### ")[0]
    assert "- **f1** `kafka-outage` of kafka-1 at +60.0 s for 10.0 s:" in kafka
    assert (
        "Kafka brokers and controllers: under-replicated partitions 0 → 2 from +2.0 s, back at +18.0 s "
        "(8.0 s after the fault ended)."
    ) in kafka
    assert "PostgreSQL: no signal left its level (unchanged: connections)." in kafka
    assert "](signals-f1.png)" in kafka
    spark = chaos.split("#### Spark")[1].split("#### ")[0]
    assert "sink commits during the fault 0.0/s; commits resumed 11.0 s after it ended" in spark  # at 75 s
    assert (full_run / "signals-f1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    findings = section(text, "6. Findings")
    assert "`kafka-outage` of kafka-1 (f1):" in findings
    assert "first to react: under-replicated partitions, 2.0 s after the start" in findings
    assert "no `metrics/` directory" not in text


def test_what_spark_reran_per_fault(full_run: Path, fresh_pg_dsn: str) -> None:
    """The recovery table's "Spark re-ran" column counts the batch executions the sink recorded from each
    fault's start to the end of the second it recovered in; the same from the run directory's saved copy
    once the sink has lost them, also from an older run's spark_batches.json. A fault that did not
    recover: to the run's end."""
    late = {"fault_id": "f5", "kind": "kill-executor", "target": "spark-worker-1", "executor": "docker",
            "start_ms": ms(117), "end_ms": ms(118), "outcome": "ok"}  # fmt: skip
    timeline = (full_run / "timeline.jsonl").read_text()
    (full_run / "timeline.jsonl").write_text(timeline[: timeline.rindex("\n") + 1] + json.dumps(late) + "\n")
    executions = [  # (batch, execution, committed at s, retried tasks)
        (30, 0, 30.0, 1),  # before every fault
        (65, 0, 72.0, 2),  # an executor lost during f1 (and f0): two tasks ran again
        (75, 0, 75.5, 0),
        (76, 0, 77.0, 1),  # f1 and f0 recovered at 76 s: their window ends at 77 s, exclusive
        (99, 1, 100.4, 0),  # the driver killed by f2 ran batch 99 again
        (105, 0, 105.2, 0),
        (118, 0, 118.5, 1),  # f5's lost executor; the run's data ends before the pipeline is healthy again
    ]
    for batch_id, execution, at, retried in executions:
        execute(
            fresh_pg_dsn,
            "INSERT INTO sink_batch_reads (query_id, batch_id, execution, rows_read, committed_at, tasks,"
            " retried_tasks) VALUES ('q1', %s, %s, 100, to_timestamp(%s), 4, %s)",
            (batch_id, execution, T0 + at, retried),
        )

    def reran() -> dict[str, str]:
        recovery = section(render(full_run, fresh_pg_dsn), "3. Recovery time measurements")
        table = recovery.split("| fault | kind | target |")[1].split("\n\n")[0]
        assert "| Spark re-ran | note |" in table
        assert "| f5 | kill-executor | spark-worker-1 | did not recover within the run |" in table
        return {line.split(" | ")[0].strip("| "): line.split(" | ")[7] for line in table.splitlines()[2:]}

    expected = {
        "f1": "2 task(s) re-run in 1 batch(es)",
        "f2": "1 whole batch(es) re-run",
        "f0": "2 task(s) re-run in 1 batch(es)",
        "f3": "nothing re-run",
        "f5": "1 task(s) re-run in 1 batch(es) (until the run's end)",
    }
    assert reran() == expected  # from the sink: the run directory has no saved copy
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn:
        save_sink_data(full_run, conn, (60,))
    execute(fresh_pg_dsn, "DELETE FROM sink_batch_reads")
    assert reran() == expected  # from sink_data.json
    record = json.loads((full_run / "sink_data.json").read_text())
    batches = record.pop("spark_batches")
    assert [e[2] for e in batches["executions"]] == [e[0] for e in executions]
    # An older run: sink_data.json without them, spark_batches.json beside it (its own span, saved_at).
    (full_run / "sink_data.json").write_text(json.dumps(record))
    (full_run / "spark_batches.json").write_text(
        json.dumps({"saved_at": "x", **batches, "start_ms": ms(-10)})
    )
    assert reran() == expected
    (full_run / "spark_batches.json").unlink()
    assert {v.split(" (")[0] for v in reran().values()} == {"no batch committed"}  # nor in the sink


def test_saved_sink_data_renders_the_same_report_without_the_database(
    full_run: Path, fresh_pg_dsn: str
) -> None:
    """What the report read from the sink, saved in the run directory (sink_data.json, as `tools experiment
    run` does at the run's end), renders the same report once the run's rows are gone and with no
    database at all; a baseline the copy does not hold says so instead of guessing."""
    execute(  # one progress event with offsets: Spark's lag per partition, also read from the sink
        fresh_pg_dsn,
        "INSERT INTO spark_progress (query_id, batch_id, reported_at, num_input_rows, end_offsets,"
        " latest_offsets) VALUES ('q1', 10, to_timestamp(%s), 0, %s, %s)",
        (T0 + 50, json.dumps({"events": {"0": 40, "1": 7}}), json.dumps({"events": {"0": 45, "1": 7}})),
    )
    online = render(full_run, fresh_pg_dsn)
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn:  # what tools experiment run saves
        saved = save_sink_data(full_run, conn, (60,))
    assert saved == full_run / "sink_data.json"
    record = json.loads(saved.read_text())
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(DISTINCT floor(extract(epoch FROM committed_at))) FROM events WHERE run_id = %s",
            (RUN,),
        )
        assert len(record["series"]) == cur.fetchone()[0]  # one row per second with commits, none per event
    assert [x["partitions"] for x in record["lag"]] == [{"0": [[ms(50), 5]], "1": [[ms(50), 0]]}]
    execute(fresh_pg_dsn, "DELETE FROM events WHERE run_id = %s", (RUN,))
    execute(fresh_pg_dsn, "DELETE FROM spark_progress")
    execute(fresh_pg_dsn, "DELETE FROM sink_batch_reads")

    def body(text: str) -> str:  # from the overview on: the first paragraph names the data's source
        return text[text.index("## Overview") :]

    recovery = section(online, "3. Recovery time measurements")
    assert "| f1 | kafka-outage | kafka-1 | 16.0 s | 6.0 s |" in recovery
    assert "p99 latency 100 ms" in recovery
    for dsn in (fresh_pg_dsn, None):  # a database without the run's rows; none at all (--offline)
        text = render(full_run, dsn)
        assert section(text, "3. Recovery time measurements") == recovery, dsn
        assert section(text, "4. Throughput and latency") == section(online, "4. Throughput and latency")
        assert body(text) == body(online), dsn
        assert "saved with it (`sink_data.json`, " in text and "lacks" not in text
    assert "a fresh query of the `events` and `spark_progress` tables" in online
    other = write_report(gather(full_run, None, RecoveryParams(baseline_s=30))).read_text()
    assert "Recovery time: not measured" in section(other, "3. Recovery time measurements")
    assert "holds no baseline of 30 s before the first fault (saved: 60 s)" in " ".join(other.split())
