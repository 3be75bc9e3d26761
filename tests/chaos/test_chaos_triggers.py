"""Triggers and dynamic targets in scenarios: the syntax, its one-line refusals, the plan's wording, the
seeded delays and the resolvers' readings. Pure (no container); the NOTIFY itself is tested on a real
PostgreSQL in tests/components/test_trigger_notify.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tools.chaos.cli import app
from tools.chaos.config import ChaosConfig
from tools.chaos.scenario import load_scenario
from tools.chaos.triggers import (
    BatchStartWatcher,
    Trigger,
    TriggerError,
    leader_most,
    node_ids,
    parse_trigger,
    quorum_leader,
)

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yml"
    path.write_text(text)
    return path


BAD = [
    ("after: {event: sink-comit}", "unknown event 'sink-comit' in 'after' (known: sink-commit, batch-start)"),
    ("after: nope", "unknown event 'nope'"),
    ("after: {event: sink-commit, delay: 20}", "'after.delay'"),
    ("after: {event: sink-commit, delay: fast}", "'after.delay': invalid duration 'fast'"),
    ("after: {event: sink-commit, delay: 30-20ms}", "the lower bound is larger than the upper one"),
    ("after: {event: sink-commit, delay: -5ms}", "'after.delay': invalid delay"),
    ("after: {event: sink-commit, within: 0s}", "'after.within' must be a positive duration"),
    ("after: {event: sink-commit, when: now}", "unknown key 'when' in 'after'"),
    ("after: [sink-commit]", "'after' must be an event name or a mapping"),
]


@pytest.mark.parametrize(("after", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_trigger_is_one_line_and_exit_2(tmp_path: Path, after: str, message: str) -> None:
    path = write(tmp_path, f"- {{kind: kill, target: spark, at: 10s, {after}}}\n")
    result = runner.invoke(app, ["validate-scenario", str(path), "--offline"])
    assert result.exit_code == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: fault #1: "), result.stderr
    assert message in lines[0]


def test_trigger_forms() -> None:
    assert parse_trigger("sink-commit") == Trigger("sink-commit", 0, 0, 60_000)
    assert parse_trigger({"event": "sink-commit", "delay": "0-20ms"}) == Trigger("sink-commit", 0, 20, 60_000)
    assert parse_trigger({"event": "batch-start", "delay": "5-20ms", "within": "30s"}) == Trigger(
        "batch-start", 5, 20, 30_000
    )
    assert parse_trigger({"event": "sink-commit", "delay": "5ms-1s"}).delay_max_ms == 1000
    assert parse_trigger({"event": "sink-commit", "delay": "15ms"}).describe() == "after sink-commit +15ms"
    ranged = parse_trigger({"event": "sink-commit", "delay": "0-20ms"})
    assert ranged.describe() == "after sink-commit +0-20ms"
    assert parse_trigger("batch-start").describe() == "after batch-start"


def test_delays_come_from_the_seed() -> None:
    trigger = Trigger("sink-commit", 0, 1000, 60_000)
    first = [trigger.draw_delay(7, i, "spark") for i in range(20)]
    assert first == [trigger.draw_delay(7, i, "spark") for i in range(20)]
    assert first != [trigger.draw_delay(8, i, "spark") for i in range(20)]
    assert all(0 <= d <= 1000 for d in first)
    assert Trigger("sink-commit", 5, 5, 1).draw_delay(1, 1, "spark") == 5


def test_a_triggered_fault_holds_its_whole_watch_in_the_plan(tmp_path: Path) -> None:
    """Conflict and quorum checks count a triggered fault from `at` to its latest possible end."""
    path = write(
        tmp_path,
        "- {kind: kill, target: spark, at: 10s, restart_after: 10s,"
        " after: {event: sink-commit, delay: 0-20ms, within: 30s}}\n"
        "- {kind: pause, target: spark, at: 55s, duration: 5s}\n",
    )
    loaded = load_scenario(path, ChaosConfig())
    row = loaded.schedule.describe()[0]
    assert row["trigger"] == "after sink-commit +0-20ms"
    assert row["until_ms"] == 10_000 + 30_000 + 20 + 10_000
    clash = write(
        tmp_path,
        "- {kind: kill, target: spark, at: 10s, restart_after: 10s,"
        " after: {event: sink-commit, within: 30s}}\n"
        "- {kind: pause, target: spark, at: 45s, duration: 5s}\n",
    )
    result = runner.invoke(app, ["validate-scenario", str(clash), "--offline"])
    assert result.exit_code == 2 and "overlaps fault #1" in result.stderr


def test_a_dynamic_broker_counts_against_the_quorum(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "- {kind: stop, target: kafka-1, at: 0s, time: 5, restart: true, duration: 20s}\n"
        "- {kind: kill, target: kafka-leader-most, at: 5s, restart_after: 10s}\n",
    )
    result = runner.invoke(app, ["validate-scenario", str(path), "--offline"])
    assert result.exit_code == 2 and "takes down 2 Kafka brokers" in result.stderr


def test_plan_prints_the_trigger_instead_of_a_clock_time() -> None:
    result = runner.invoke(app, ["plan", "--scenario", "ci", "--offline"])
    assert result.exit_code == 0, result.stderr
    triggered = [line for line in result.stdout.splitlines() if "after sink-commit" in line]
    assert triggered and all(" spark " in line for line in triggered), result.stdout
    assert any("kafka-leader-most" in line for line in result.stdout.splitlines())


def test_resolvers_read_leaders_nodes_and_quorum() -> None:
    assert leader_most({0: 2, 1: 2, 2: 1, 3: 3, 4: 1, 5: 2}) == 2
    assert leader_most({0: 3, 1: 1}) == 1  # a tie goes to the lowest id: reproducible
    with pytest.raises(TriggerError):
        leader_most({0: -1})
    texts = {"kafka-1": "process.roles=broker\nnode.id=1\n", "kafka-controller-2": "node.id = 102"}
    assert node_ids(texts) == {1: "kafka-1", 102: "kafka-controller-2"}
    assert quorum_leader("ClusterId: x\nLeaderId: 103\nLeaderEpoch: 4\n") == 103
    with pytest.raises(TriggerError):
        quorum_leader("LeaderId: -1\n")


def test_batch_start_is_a_new_file_in_the_offsets_log(tmp_path: Path) -> None:
    offsets = tmp_path / "events" / "offsets"
    offsets.mkdir(parents=True)
    (offsets / "41").write_text("v1\n")
    (offsets / ".42.tmp").write_text("")  # Spark's temporary file: not a batch yet
    watcher = BatchStartWatcher(lambda: tmp_path)
    watcher.arm()
    assert watcher.wait(time.monotonic() + 0.2, threading.Event()) is None
    threading.Timer(0.1, lambda: (offsets / "42").write_text("v1\n")).start()
    fired = watcher.wait(time.monotonic() + 5, threading.Event())
    assert fired is not None and fired.detail == "batch 42 (events)"
