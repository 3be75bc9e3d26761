"""A real run: producer at 1000/s, a sink emulator, the broker stopped for 8 s; then validate and report.

Timing on a shared machine varies, so the assertions rest on what a stopped broker guarantees whatever the
load: no ack arrives while it is stopped, and nothing produced after it stopped commits before it resumes.
The sink may still be committing rows produced before the stop (it lags more under load), but from
threshold seconds into the pause each of those is over the report's threshold; so every second whose last
c seconds (the cadence) lie in [stop + threshold, resume) is unhealthy, and with a hold longer than the
pause no healthy hold can fit before them: the recovery comes after the resume, never "no degradation".
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import signal
import socket
import time
from pathlib import Path

import psycopg2
from fixtures.chromium import assert_report_page_renders
from fixtures.cli import popen_tools, run_tools
from fixtures.kafka import KafkaBroker
from fixtures.sink import SinkEmulator

from tools import ranges
from tools.ledger import load_ledger
from tools.report.data import save_sink_data
from tools.run.clock import ms_from_iso

PAUSE_S = 8.0  # long enough to stand out of a baseline inflated by load (threshold up to ~5 s)
HOLD_S = 10  # the report's --hold: longer than the pause plus a second (see the module docstring)
AFTER_S = HOLD_S + 8  # after the pause: the backlog drains, then HOLD_S healthy seconds in the data


def sink_count(dsn: str, run_id: str) -> int:
    with contextlib.closing(psycopg2.connect(dsn)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM events WHERE run_id = %s", (run_id,))
        return int(cur.fetchone()[0])


def wait_caught_up(dsn: str, run_dir: Path, at_least: int, timeout: float = 60) -> None:
    """Until the sink holds at_least rows and lags the producer's acks by under a second of traffic."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run_dir / "ledger.log").exists():
            acked = ranges.total(load_ledger(run_dir).acked())
            rows = sink_count(dsn, "e2e")
            if rows >= at_least and acked - rows < 1000:
                return
        time.sleep(0.3)
    raise AssertionError("the sink emulator did not catch up")


def test_recovery_is_measured_on_a_real_run(
    tmp_path: Path, kafka_broker: KafkaBroker, kafka_topic: str, fresh_pg_dsn: str
) -> None:
    run_dir = tmp_path / "e2e"
    with SinkEmulator(kafka_broker.bootstrap, kafka_topic, fresh_pg_dsn) as sink:
        proc = popen_tools(
            "produce", "--run-id", "e2e", "--runs-root", tmp_path, "--bootstrap-servers",
            kafka_broker.bootstrap, "--topic", kafka_topic, "--postgres-dsn", fresh_pg_dsn, "--rate", "1000",
        )  # fmt: skip
        try:
            wait_caught_up(fresh_pg_dsn, run_dir, 4000)  # a steady baseline before the fault
            assert kafka_broker.proc is not None
            start_ms = time.time_ns() // 1_000_000
            kafka_broker.proc.send_signal(signal.SIGSTOP)  # our own broker process
            stopped_ms = time.time_ns() // 1_000_000  # stopped by now; still stopped until resume_ms
            try:
                time.sleep(PAUSE_S)
            finally:
                resume_ms = time.time_ns() // 1_000_000
                kafka_broker.proc.send_signal(signal.SIGCONT)
            end_ms = time.time_ns() // 1_000_000
            time.sleep(AFTER_S)
        finally:
            proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        fault = {
            "fault_id": "pause-1", "kind": "pause", "target": "kafka", "params": {"duration": f"{PAUSE_S}s"},
            "executor": "test", "start_ms": start_ms, "end_ms": end_ms, "outcome": "ok",
        }  # fmt: skip
        (run_dir / "timeline.jsonl").write_text(json.dumps(fault) + "\n")
        wait_caught_up(fresh_pg_dsn, run_dir, ranges.total(load_ledger(run_dir).acked()))
        assert sink.error is None, sink.error

    res = run_tools("validate", run_dir, "--settle", "1")
    assert res.returncode == 0, res.stdout + res.stderr
    res = run_tools("report", run_dir, "--hold", HOLD_S)
    assert res.returncode == 0, res.stderr
    text = (run_dir / "RESILIENCE_REPORT.md").read_text()
    assert "**Verdict: VALID**" in text
    assert "Spark progress: not measured in this run" in text  # no Spark here, and the report says so

    # No ack can arrive from a stopped broker: the ledger shows the gap.
    gap = re.search(r"^\| pause-1 \| pause \| [\d.,]+/s \| ([\d.]+) s \|", text, re.M)
    assert gap and float(gap.group(1)) >= PAUSE_S - 1.0, text

    threshold = re.search(r"recovery threshold ([\d,]+) ms; commit cadence ([\d.]+) s", text)
    assert threshold, text
    threshold_ms, cadence = float(threshold.group(1).replace(",", "")) + 1, int(float(threshold.group(2)))
    # The seconds the stopped broker makes unhealthy (module docstring), from the report's own threshold.
    first_bad = math.ceil((stopped_ms + threshold_ms) / 1000) + cadence - 1
    last_bad = resume_ms // 1000 - 1
    assert first_bad <= last_bad, (
        f"baseline too slow for this test: a {PAUSE_S:g} s pause is within it\n{text}"
    )
    assert first_bad - HOLD_S < start_ms // 1000  # no healthy hold fits between the fault's start and them
    row = re.search(  # recovery | after heal | recovered at
        r"^\| pause-1 \| pause \| kafka \| ([\d.]+) s \| ([\d.]+ s|recovered before the fault ended) "
        r"\| (\S+) \|",
        text,
        re.M,
    )
    assert row, text
    recovery, after_heal, recovered_at = float(row.group(1)), row.group(2), ms_from_iso(row.group(3))
    assert recovered_at >= (last_bad + 1) * 1000, text
    if after_heal.endswith(" s"):  # otherwise the report says it recovered before the fault ended, in words
        assert float(after_heal[:-2]) >= 0, text
    assert recovery < (end_ms - start_ms) / 1000 + AFTER_S, text

    # The same report as one HTML page, opened in headless Chromium as a person would.
    res = run_tools("report", run_dir, "--hold", HOLD_S, "--format", "html")
    assert res.returncode == 0, res.stderr
    page = run_dir / "RESILIENCE_REPORT.html"
    assert res.stdout.split() == [str(run_dir / "RESILIENCE_REPORT.md"), str(page)]
    dom = assert_report_page_renders(page, tmp_path / "shot.png")
    assert "this run saved no Prometheus metrics" in dom  # no Prometheus here: one line says so

    # What `tools experiment run` saves at a run's end: the sink's figures, Spark's batch executions among
    # them. Once the run's rows are gone, `--offline` renders the same recovery table from them.
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn:
        save_sink_data(run_dir, conn, (60,))
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM events WHERE run_id = 'e2e'")
        conn.commit()
    assert sink_count(fresh_pg_dsn, "e2e") == 0
    res = run_tools("report", run_dir, "--hold", HOLD_S, "--offline")
    assert res.returncode == 0, res.stderr
    offline = (run_dir / "RESILIENCE_REPORT.md").read_text()

    def recovery_section(report: str) -> str:
        return report.split("## 3. Recovery time measurements")[1].split("\n## ")[0]

    assert recovery_section(offline) == recovery_section(text)
    assert row.group(0) in recovery_section(offline)
    assert "saved with it (`sink_data.json`, " in offline
    # No database answering at all: one warning line, the same table from the saved copy.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens once the socket is closed
    res = run_tools(
        "report", run_dir, "--hold", HOLD_S, "--postgres-dsn", f"host=127.0.0.1 port={closed} dbname=x"
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("warning: cannot connect to PostgreSQL"), (
        res.stderr
    )
    assert recovery_section((run_dir / "RESILIENCE_REPORT.md").read_text()) == recovery_section(text)
