"""`tools chaos watch` against a real run in progress: a real `tools produce` writing its ledger to a real
Kafka broker, and sink rows landing in a real PostgreSQL as the run goes."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from pathlib import Path

from fixtures.cli import popen_tools, run_tools
from fixtures.kafka import KafkaBroker
from fixtures.sink import Row, insert_rows

from tools.ledger import load_ledger
from tools.run.clock import now_ms


def _produce(
    root: Path, run_id: str, broker: KafkaBroker, topic: str, dsn: str, seconds: int
) -> subprocess.Popen[str]:
    return popen_tools(
        "produce", "--runs-root", root, "--run-id", run_id, "--bootstrap-servers", broker.bootstrap,
        "--topic", topic, "--postgres-dsn", dsn, "--rate", "400", "--duration", str(seconds),
    )  # fmt: skip


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def _sink_copier(run_dir: Path, dsn: str, stop: threading.Event) -> None:
    """Commit every acked id into the sink table as it is acknowledged, the way the Spark sink would."""
    done = 0
    while not stop.wait(0.5):
        state = load_ledger(run_dir)
        ids = [i for a in state.acks for i in range(a.first, a.last + 1) if i >= done]
        if ids:
            now = now_ms()
            insert_rows(dsn, run_dir.name, (Row(i, produced_ms=now - 300, committed_ms=now) for i in ids))
            done = max(ids) + 1


def _numbers(lines: list[str], label: str) -> list[float]:
    return [
        float(m.group(1).replace(",", "")) for line in lines for m in re.finditer(rf"{label} ([\d,]+)", line)
    ]


def test_watch_follows_a_producing_run_until_it_ends(
    tmp_path: Path, kafka_broker: KafkaBroker, kafka_topic: str, fresh_pg_dsn: str
) -> None:
    producer = _produce(tmp_path, "w1", kafka_broker, kafka_topic, fresh_pg_dsn, seconds=10)
    run_dir = tmp_path / "w1"
    stop = threading.Event()
    copier = threading.Thread(target=_sink_copier, args=(run_dir, fresh_pg_dsn, stop), daemon=True)
    try:
        _wait_for(run_dir / "ledger.log")
        copier.start()
        # Default RUN: the newest run under the root that is in progress; stdout is a pipe: plain lines.
        watch = popen_tools("chaos", "watch", "--runs-root", tmp_path, "--interval", "1")
        out, err = watch.communicate(timeout=90)
        assert producer.wait(timeout=30) == 0, producer.communicate()
    finally:
        stop.set()
        copier.join(timeout=10)
        if producer.poll() is None:
            producer.terminate()
            producer.wait()
    lines = out.splitlines()
    assert watch.returncode == 0, err
    assert max(_numbers(lines, "acks/s")) > 0, out
    assert max(_numbers(lines, "commits/s")) > 0, out
    assert any("p99 lag" in line for line in lines), out
    assert "unseen" in out
    assert lines[-1] == "run w1: the producer stopped", out
    assert len(lines) >= 5, out  # a line a second while it ran


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_watch_waits_for_a_new_run_and_says_postgres_is_unreachable(
    tmp_path: Path, kafka_broker: KafkaBroker, kafka_topic: str
) -> None:
    dsn = f"host=127.0.0.1 port={_closed_port()} dbname=x user=x connect_timeout=1"
    # --wait: the watch starts first (as `make chaos` starts it next to the playbook) and takes the run
    # that begins after it.
    watch = popen_tools("chaos", "watch", "--wait", "--runs-root", tmp_path, "--interval", "1")
    time.sleep(1)
    producer = _produce(tmp_path, "w2", kafka_broker, kafka_topic, dsn, seconds=5)
    try:
        out, err = watch.communicate(timeout=60)
    finally:
        producer.wait(timeout=30)
    assert watch.returncode == 0, err
    lines = out.splitlines()
    assert any("PostgreSQL unreachable" in line for line in lines), out
    assert max(_numbers(lines, "acks/s")) > 0, out
    assert lines[-1] == "run w2: the producer stopped"


def test_watch_bad_run_is_one_line_exit_2(tmp_path: Path) -> None:
    for args in ([str(tmp_path / "nope")], ["--run-id", "../x"], ["--runs-root", str(tmp_path)]):
        res = run_tools("chaos", "watch", *args)
        assert res.returncode == 2, (args, res)
        assert res.stdout == "" and len(res.stderr.splitlines()) == 1 and res.stderr.startswith("error: "), (
            res
        )
