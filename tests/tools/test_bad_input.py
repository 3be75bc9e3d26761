"""Bad input: one line on stderr, exit 2, never a traceback (in-process CliRunner and the real script)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.cli import invoke, run_tools
from fixtures.kafka import KafkaBroker
from fixtures.ports import free_port

from tools.experiment import experiment, producer
from tools.run.meta import create_run, load_run


def assert_one_line_error(result_stderr: str, exit_code: int, needle: str) -> None:
    assert exit_code == 2, result_stderr
    lines = result_stderr.strip().splitlines()
    assert len(lines) == 1, result_stderr
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    assert "Traceback" not in result_stderr


def make_run(root: Path, run_id: str = "r1", **kwargs: str) -> Path:
    run_dir = create_run(root / run_id, **kwargs)
    (run_dir / "ledger.log").write_text(
        f"chaosbed-ledger 1 {run_id}\nS 1 1 1\nR 1 0 9\nA 2 0 9 0 0\nC 3 10\n"
    )
    return run_dir


@pytest.mark.parametrize("command", ["validate", "report"])
def test_missing_run(tmp_path: Path, command: str) -> None:
    res = run_tools(command, tmp_path / "nope")
    assert_one_line_error(res.stderr, res.returncode, "no run at")
    res = invoke(command, "--runs-root", tmp_path, "--run-id", "nope")
    assert_one_line_error(res.stderr, res.exit_code, "no run at")


def test_corrupt_ledger(tmp_path: Path, postgres_dsn: str) -> None:
    run_dir = make_run(tmp_path, postgres_dsn=postgres_dsn)
    (run_dir / "ledger.log").write_text("chaosbed-ledger 1 r1\nR 1 0 9\nA 1 banana\n")
    res = invoke("validate", run_dir)
    assert_one_line_error(res.stderr, res.exit_code, "corrupt ledger")
    assert "line 3" in res.stderr
    res = invoke("report", run_dir)
    assert_one_line_error(res.stderr, res.exit_code, "corrupt ledger")


def test_missing_ledger(tmp_path: Path, postgres_dsn: str) -> None:
    run_dir = create_run(tmp_path / "r1", postgres_dsn=postgres_dsn)
    res = invoke("validate", run_dir)
    assert_one_line_error(res.stderr, res.exit_code, "no producer ledger")


def test_corrupt_run_json(tmp_path: Path) -> None:
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "run.json").write_text("{")
    res = invoke("validate", tmp_path / "r1")
    assert_one_line_error(res.stderr, res.exit_code, "unreadable")


@pytest.mark.parametrize("command", ["validate", "report"])
def test_unreachable_database_never_shows_the_password(tmp_path: Path, command: str) -> None:
    dsn = f"host=127.0.0.1 port={free_port()} user=u password=Sup3rSecret dbname=x"
    run_dir = make_run(tmp_path, postgres_dsn=dsn)
    res = run_tools(command, run_dir)
    assert_one_line_error(res.stderr, res.returncode, "cannot connect to PostgreSQL")
    assert "Sup3rSecret" not in res.stderr + res.stdout


def test_no_dsn_anywhere(tmp_path: Path) -> None:
    res = invoke("validate", make_run(tmp_path))
    assert_one_line_error(res.stderr, res.exit_code, "no PostgreSQL DSN")


def test_bad_sink_table(tmp_path: Path, postgres_dsn: str) -> None:
    res = invoke("validate", make_run(tmp_path, postgres_dsn=postgres_dsn), "--sink-table", "pg_user")
    assert_one_line_error(res.stderr, res.exit_code, "invalid sink table")


def test_report_offline_needs_no_database(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, postgres_dsn=f"host=127.0.0.1 port={free_port()}")
    res = invoke("report", run_dir, "--offline")
    assert res.exit_code == 0, res.stderr
    assert "not measured in this run" in (run_dir / "RESILIENCE_REPORT.md").read_text()


def test_report_bad_format_touches_nothing(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path)
    res = invoke("report", run_dir, "--offline", "--format", "pdf")
    assert_one_line_error(res.stderr, res.exit_code, "invalid --format 'pdf': use md or html")
    assert not (run_dir / "RESILIENCE_REPORT.md").exists() and not list(run_dir.glob("*.png"))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--count", "5", "--duration", "5"], "not both"),
        (["--run-id", "../evil"], "invalid run id"),
        (["-X", "acks"], "expected key=value"),
        (["--meta", "{not json"], "invalid --meta JSON"),
        (["--meta", "@/nonexistent/meta.json"], "cannot read --meta file"),
        (["--sink-table", "nope"], "invalid sink table"),
    ],
)
def test_produce_bad_flags(tmp_path: Path, args: list[str], needle: str) -> None:
    res = invoke("produce", "--runs-root", tmp_path, "--bootstrap-servers", "127.0.0.1:1", *args)
    assert_one_line_error(res.stderr, res.exit_code, needle)


def test_produce_without_bootstrap_servers(tmp_path: Path) -> None:
    res = invoke("produce", "--run-id", "r1", "--runs-root", tmp_path, "--count", "1")
    assert_one_line_error(res.stderr, res.exit_code, "no Kafka bootstrap servers")


def test_produce_to_a_missing_topic(tmp_path: Path, kafka_broker: KafkaBroker) -> None:
    res = run_tools(
        "produce", "--run-id", "r1", "--runs-root", tmp_path, "--bootstrap-servers", kafka_broker.bootstrap,
        "--topic", "no_such_topic", "--count", "1",
    )  # fmt: skip
    assert_one_line_error(res.stderr, res.returncode, "topic 'no_such_topic' does not exist")
    # Nothing was reserved, and the ledger is closed cleanly for the next attempt.
    assert "R " not in (tmp_path / "r1" / "ledger.log").read_text()


def test_produce_init_only_writes_run_json_for_the_playbook(tmp_path: Path) -> None:
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"versions": {"kafka": "4.4.0"}, "topology": {"brokers": 3}}))
    res = invoke(
        "produce", "--run-id", "r9", "--runs-root", tmp_path, "--init-only", "--bootstrap-servers", "k:9092",
        "--postgres-dsn", "host=pg passfile=/p", "--profile", "unsafe-kafka", "--meta", f"@{meta}",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == str(tmp_path / "r9")
    data = load_run(tmp_path / "r9")
    assert data["profile"] == "unsafe-kafka" and data["versions"] == {"kafka": "4.4.0"}
    assert data["topology"] == {"brokers": 3} and data["postgres_dsn"] == "host=pg passfile=/p"
    assert not (tmp_path / "r9" / "ledger.log").exists()


@pytest.fixture
def nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input must be refused before the producer or the chaos runner is started."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("bad input started something")

    monkeypatch.setattr(producer.LocalProducer, "start", refuse)
    monkeypatch.setattr(producer.ContainerProducer, "start", refuse)
    monkeypatch.setattr(experiment.subprocess, "Popen", refuse)
    monkeypatch.setattr(experiment, "create_run", refuse)


EXPERIMENT = [
    "experiment",
    "run",
    "--bootstrap-servers",
    "127.0.0.1:1",
    "--postgres-dsn",
    "host=127.0.0.1 port=1",
]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--scenario", "no-such-scenario"], "scenario 'no-such-scenario' not found"),
        (["--scenario", "ci", "--rate", "-1"], "--rate must be at least 0"),
        (["--scenario", "ci", "--baseline", "0"], "--baseline must be at least 1"),
        (["--scenario", "ci", "--executor", "chaosmonkey"], "--executor must be docker or pumba"),
        (["--scenario", "ci", "-X", "acks"], "expected key=value"),
        (["--scenario", "ci", "--sink-table", "users"], "invalid sink table"),
        (["--scenario", "random", "--duration", "soon"], "--duration"),
        (["--scenario", "ci", "--run-id", "../evil"], "invalid run id"),
        (["--scenario", "ci", "--producer", "{not json"], "invalid --producer JSON"),
        (["--scenario", "ci", "--producer", '{"image": "x"}'], "'bootstrap_servers' is required"),
        (["--scenario", "ci", "--meta", "[1]"], "invalid --meta JSON"),
        (["--scenario", "ci", "--keep-runs", "0"], "--keep-runs must be at least 1"),
    ],
)
def test_experiment_bad_input(tmp_path: Path, nothing_starts: None, args: list[str], needle: str) -> None:
    res = invoke(*EXPERIMENT, "--runs-root", tmp_path / "runs", *args)
    assert_one_line_error(res.stderr, res.exit_code, needle)
    assert not (tmp_path / "runs").exists()


def test_experiment_refuses_an_existing_run(tmp_path: Path, nothing_starts: None) -> None:
    create_run(tmp_path / "old")
    res = invoke(*EXPERIMENT, "--run-dir", tmp_path / "old", "--scenario", "ci")
    assert_one_line_error(res.stderr, res.exit_code, "already exists")


def test_experiment_unreachable_sink_is_bad_input(tmp_path: Path, nothing_starts: None) -> None:
    res = invoke(*EXPERIMENT, "--runs-root", tmp_path, "--scenario", "ci")
    assert_one_line_error(res.stderr, res.exit_code, "cannot connect to PostgreSQL")
    assert list(tmp_path.iterdir()) == []


def test_experiment_bad_input_from_the_real_script(tmp_path: Path) -> None:
    res = run_tools(*EXPERIMENT, "--runs-root", tmp_path, "--scenario", "no-such-scenario")
    assert_one_line_error(res.stderr, res.returncode, "not found")
    assert list(tmp_path.iterdir()) == []
