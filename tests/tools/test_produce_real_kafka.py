"""`tools produce` against a real KRaft broker: acks, resume after SIGKILL, SIGTERM, a broker pause."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from itertools import pairwise
from pathlib import Path

from fixtures.cli import popen_tools, run_tools
from fixtures.kafka import KafkaBroker

from tools import ranges
from tools.ledger import LedgerState, load_ledger
from tools.run.meta import load_run


def produce_args(run_dir: Path, run_id: str, broker: KafkaBroker, topic: str, *extra: str) -> list[str]:
    return [
        "produce", "--run-id", run_id, "--runs-root", str(run_dir),
        "--bootstrap-servers", broker.bootstrap, "--topic", topic, *extra,
    ]  # fmt: skip


def wait_for_acks(
    run_dir: Path, at_least: int, proc: subprocess.Popen[str], timeout: float = 60
) -> LedgerState:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if (run_dir / "ledger.log").exists():
            state = load_ledger(run_dir)
            if ranges.total(state.acked()) >= at_least:
                return state
        time.sleep(0.2)
    raise AssertionError(f"fewer than {at_least} acks after {timeout}s")


def records_by_id(broker: KafkaBroker, topic: str, run_id: str) -> dict[int, list[tuple[int, int]]]:
    """event id -> every (partition, offset) it occupies in the topic."""
    out: dict[int, list[tuple[int, int]]] = {}
    for part, off, value in broker.consume_all(topic):
        event = json.loads(value)
        assert event["run_id"] == run_id and set(event) == {"run_id", "event_id", "produced_at_ms"}
        out.setdefault(event["event_id"], []).append((part, off))
    return out


def assert_ledger_matches_topic(state: LedgerState, by_id: dict[int, list[tuple[int, int]]]) -> None:
    # No id was written twice (idempotence, and no re-send after a restart).
    assert all(len(places) == 1 for places in by_id.values())
    # Every acked id is in the topic at exactly the partition/offset its ack recorded.
    for a in state.acks:
        for i in range(a.first, a.last + 1):
            assert by_id[i] == [(a.partition, a.offset + i - a.first)], i
    # Nothing in the topic was never attempted, and no definitely failed id is there.
    present = ranges.normalize((i, i) for i in by_id)
    assert ranges.subtract(present, state.attempted()) == []
    assert ranges.intersect(present, state.failed()) == []


def test_produce_count_acks_every_event(tmp_path: Path, kafka_broker: KafkaBroker, kafka_topic: str) -> None:
    started = time.time() * 1000
    res = run_tools(
        *produce_args(tmp_path, "p1", kafka_broker, kafka_topic, "--rate", "0", "--count", "5000"),
        "--postgres-dsn",
        "host=db passfile=/x",
    )
    assert res.returncode == 0, res.stderr
    run_dir = tmp_path / "p1"
    state = load_ledger(run_dir)
    assert state.counts() == {"attempted": 5000, "acked": 5000, "failed": 0, "indeterminate": 0}
    assert len(state.acks) < 200  # ranges, not one line per event
    by_id = records_by_id(kafka_broker, kafka_topic, "p1")
    assert sorted(by_id) == list(range(5000))
    assert_ledger_matches_topic(state, by_id)
    info = load_run(run_dir)
    assert info["bootstrap_servers"] == kafka_broker.bootstrap and info["topic"] == kafka_topic
    assert info["postgres_dsn"] == "host=db passfile=/x" and info["ended_at"]
    assert info["settings"]["producer"]["kafka_config"]["acks"] == "all"
    # produced_at_ms is the producer's wall clock
    produced = [json.loads(v)["produced_at_ms"] for _, _, v in kafka_broker.consume_all(kafka_topic)]
    assert started - 1000 <= min(produced) <= max(produced) <= time.time() * 1000
    assert "acked 5000" in res.stdout


def test_sigkill_then_restart_resumes_without_resending(
    tmp_path: Path, kafka_broker: KafkaBroker, kafka_topic: str
) -> None:
    proc = popen_tools(*produce_args(tmp_path, "p2", kafka_broker, kafka_topic, "--rate", "4000"))
    run_dir = tmp_path / "p2"
    try:
        wait_for_acks(run_dir, 3000, proc)
    finally:
        proc.send_signal(signal.SIGKILL)  # our own child
        proc.wait()
    killed = load_ledger(run_dir)
    hwm = killed.next_id
    assert not killed.sessions[-1].clean
    assert hwm >= ranges.total(killed.acked())

    res = run_tools(
        *produce_args(tmp_path, "p2", kafka_broker, kafka_topic, "--rate", "0", "--count", "2000")
    )
    assert res.returncode == 0, res.stderr
    state = load_ledger(run_dir)
    assert [s.clean for s in state.sessions] == [False, True]
    assert state.attempted() == [(0, hwm + 1999)]
    # Acks recorded before the kill survive it.
    assert ranges.subtract(killed.acked(), state.acked()) == []
    # The new session sent exactly hwm .. hwm+1999, all acked.
    assert ranges.intersect(state.acked(), [(hwm, hwm + 1999)]) == [(hwm, hwm + 1999)]
    by_id = records_by_id(kafka_broker, kafka_topic, "p2")
    assert_ledger_matches_topic(state, by_id)
    assert sorted(i for i in by_id if i >= hwm) == list(range(hwm, hwm + 2000))
    # Ids the killed session never heard back about are indeterminate, never re-sent.
    old_acked = ranges.total(ranges.intersect(state.acked(), [(0, hwm - 1)]))
    assert state.indeterminate() == ranges.subtract([(0, hwm - 1)], state.acked())
    assert ranges.total(state.indeterminate()) == hwm - old_acked


def test_sigterm_flushes_records_and_exits_zero(
    tmp_path: Path, kafka_broker: KafkaBroker, kafka_topic: str
) -> None:
    proc = popen_tools(*produce_args(tmp_path, "p3", kafka_broker, kafka_topic, "--rate", "3000"))
    run_dir = tmp_path / "p3"
    wait_for_acks(run_dir, 1000, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    state = load_ledger(run_dir)
    assert state.sessions[-1].clean
    counts = state.counts()
    assert counts["indeterminate"] == 0 and counts["failed"] == 0
    assert counts["acked"] == counts["attempted"] >= 1000
    assert load_run(run_dir)["ended_at"]
    assert f"acked {counts['acked']}" in out
    assert "Traceback" not in err


def test_producer_rides_out_a_broker_pause(
    tmp_path: Path, kafka_broker: KafkaBroker, kafka_topic: str
) -> None:
    proc = popen_tools(
        *produce_args(tmp_path, "p4", kafka_broker, kafka_topic, "--rate", "2000", "--duration", "9")
    )
    run_dir = tmp_path / "p4"
    wait_for_acks(run_dir, 2000, proc)
    assert kafka_broker.proc is not None
    kafka_broker.proc.send_signal(signal.SIGSTOP)  # the broker hangs: sockets stay open, nothing answers
    try:
        time.sleep(4)
    finally:
        kafka_broker.proc.send_signal(signal.SIGCONT)
    _out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    state = load_ledger(run_dir)
    counts = state.counts()
    assert counts["failed"] == 0 and counts["indeterminate"] == 0
    assert counts["acked"] == counts["attempted"] >= 12000  # kept producing through the pause
    # The pause is visible in the ledger: a gap of >= 3 s between ack records.
    ts = sorted(a.ts_ms for a in state.acks)
    assert max(b - a for a, b in pairwise(ts)) >= 3000
    assert_ledger_matches_topic(state, records_by_id(kafka_broker, kafka_topic, "p4"))
