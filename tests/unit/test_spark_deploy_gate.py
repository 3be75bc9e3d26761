"""Faults gated on the Spark deployment (`spark_deploy:` in a scenario entry, tools/chaos/deployment.py):
not-applicable elsewhere, with the reason, in the plan, the dry run, the live watch and the report."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tools.chaos.cli import app
from tools.chaos.config import ChaosConfig
from tools.chaos.deployment import recorded
from tools.chaos.dryrun import dry_run
from tools.chaos.scenario import ScenarioError, load_scenario
from tools.errors import ToolError
from tools.run import meta
from tools.run.phases import PhaseLog, write_plan
from tools.run.timeline import NOT_APPLICABLE, read_faults
from tools.watch import RunWatch

runner = CliRunner()
SCENARIO = (
    "- {name: broker pause, kind: pause, target: kafka-1, at: 10s, duration: 10s}\n"
    "- {name: worker pause, kind: pause, target: spark-worker-1, at: 30s, duration: 10s,"
    " spark_deploy: standalone}\n"
    "- {name: master restart, kind: restart, target: spark-master, at: 1m, spark_deploy: standalone}\n"
)


def write(tmp_path: Path, text: str = SCENARIO) -> Path:
    path = tmp_path / "gated.yml"
    path.write_text(text)
    return path


def test_a_gated_fault_on_local_is_not_applicable_with_the_reason(tmp_path: Path) -> None:
    schedule = load_scenario(write(tmp_path), ChaosConfig(), spark_deploy="local").schedule
    reasons = {a.service: a.not_applicable for a in schedule.actions}
    assert reasons == {
        "kafka-1": None,
        "spark-worker-1": "needs spark_deploy standalone; this run's is local",
        "spark-master": "needs spark_deploy standalone; this run's is local",
    }
    rows = {r["target"]: r for r in schedule.describe()}
    assert rows["spark-master"]["not_applicable"] == reasons["spark-master"]
    assert rows["spark-master"]["spark_deploy"] == "standalone"
    # Nothing after the last fault that runs is waited for: the phase ends with the broker pause.
    assert schedule.phase_ms == 20_000
    # The dry run plans nothing for them (no engine is asked: the executor is never reached).
    planned = dry_run(None, replace(schedule, actions=schedule.actions[1:]), "r")
    assert [row["call"] for row in planned] == [
        [f"not-applicable: {reasons['spark-worker-1']}: nothing is done"],
        [f"not-applicable: {reasons['spark-master']}: nothing is done"],
    ]


def test_on_its_own_deployment_it_applies_and_the_phase_is_whole(tmp_path: Path) -> None:
    schedule = load_scenario(write(tmp_path), ChaosConfig(), spark_deploy="standalone").schedule
    assert all(a.not_applicable is None for a in schedule.actions)
    assert schedule.phase_ms == 60_000 + 3_000  # the restart's window: 2 x timeout + 1 s


def test_the_deployment_unknown_marks_nothing_and_checks_count_every_fault(tmp_path: Path) -> None:
    loaded = load_scenario(write(tmp_path), ChaosConfig())
    assert all(a.not_applicable is None for a in loaded.schedule.actions)
    assert [f.name for f in loaded.applicable()] == ["broker pause"]  # targets checked on the engine
    # A gated broker fault still counts against the quorum on every deployment: one file, valid on both.
    quorum = write(
        tmp_path,
        "- {kind: stop, target: kafka-1, at: 0s, time: 5, restart: true, duration: 20s}\n"
        "- {kind: stop, target: kafka-2, at: 5s, time: 5, restart: true, duration: 20s,"
        " spark_deploy: standalone}\n",
    )
    with pytest.raises(ScenarioError, match="takes down 2 Kafka brokers"):
        load_scenario(quorum, ChaosConfig(), spark_deploy="local")


def test_an_unknown_value_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, SCENARIO.replace("spark_deploy: standalone}", "spark_deploy: yarn}", 1))
    result = runner.invoke(app, ["validate-scenario", str(path), "--offline"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: fault #2: 'spark_deploy' must be one of local, standalone, got 'yarn'"
    ]
    result = runner.invoke(
        app, ["plan", "--scenario", str(write(tmp_path)), "--offline", "--spark-deploy", "k8s"]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --spark-deploy must be one of local, standalone, got 'k8s'"


def test_running_gated_faults_needs_the_deployment(tmp_path: Path) -> None:
    """Neither --spark-deploy nor run.json: refused before the engine is asked; run.json's record counts."""
    path = write(tmp_path)
    run_dir = tmp_path / "runs" / "20261204T000000Z-gated"
    result = runner.invoke(app, ["run", "--scenario", str(path), "--run-dir", str(run_dir), "--dry-run"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "fault #2 (worker pause) applies only with spark_deploy standalone" in lines[0]
    assert "--spark-deploy local|standalone" in lines[0]
    assert recorded({"topology": {"spark_deploy": "standalone"}}) == "standalone"
    assert recorded({"topology": {}}) is None
    with pytest.raises(ToolError, match=r"run\.json topology\.spark_deploy must be one of"):
        recorded({"topology": {"spark_deploy": "mesos"}})


def test_plan_shows_each_gated_fault(tmp_path: Path) -> None:
    path = write(tmp_path)
    local = runner.invoke(app, ["plan", "--scenario", str(path), "--offline", "--spark-deploy", "local"])
    assert local.exit_code == 0, local.stderr
    lines = [ln for ln in local.stdout.splitlines() if "spark-" in ln]
    assert len(lines) == 2 and all("not-applicable: needs spark_deploy standalone" in ln for ln in lines)
    unknown = runner.invoke(app, ["plan", "--scenario", str(path), "--offline", "--json"])
    doc = json.loads(unknown.stdout)
    assert doc["spark_deploy"] is None
    assert [f["spark_deploy"] for f in doc["faults"]] == [None, "standalone", "standalone"]


def test_the_report_reads_the_outcome_and_its_reason(tmp_path: Path) -> None:
    line = {
        "fault_id": "r/02-spark-master",
        "kind": "restart",
        "target": "spark-master",
        "start_ms": 1_000,
        "end_ms": 1_000,
        "outcome": NOT_APPLICABLE,
        "detail": "needs spark_deploy standalone; this run's is local",
    }
    (tmp_path / "timeline.jsonl").write_text(json.dumps(line) + "\n")
    (fault,), _ = read_faults(tmp_path)
    assert fault.not_applicable and not fault.applied
    assert fault.shown_outcome == "not-applicable (needs spark_deploy standalone; this run's is local)"


def test_the_watch_names_the_next_fault_not_applicable(tmp_path: Path) -> None:
    run_dir = meta.create_run(
        tmp_path / "r1",
        postgres_dsn="host=127.0.0.1 port=1 dbname=x user=x connect_timeout=1",
        settings={"baseline_seconds": 60, "cooldown_seconds": 45},
    )
    reason = "needs spark_deploy standalone; this run's is local"
    faults = [{"id": "01-spark-master", "name": "master restart", "target": "spark-master", "at_ms": 50_000}]
    write_plan(run_dir, {"phase_ms": 120_000, "faults": [{**faults[0], "not_applicable": reason}]})
    log = PhaseLog(run_dir)
    log.enter("start")
    log.enter("chaos", 120)
    snap = RunWatch(run_dir).snapshot()
    assert snap.next_fault is not None
    assert snap.next_fault.startswith("01-spark-master master restart on spark-master in ")
    assert snap.next_fault.endswith(f" (not-applicable: {reason})")
