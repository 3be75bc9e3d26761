"""Scenario validation: each bad input is one line naming file, fault and problem; exit 2; nothing touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tools.chaos.cli import app
from tools.chaos.config import ChaosConfig
from tools.chaos.scenario import load_scenario

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def validate(path: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["validate-scenario", str(path), *extra], env=env)
    return result.exit_code, result.stdout, result.stderr


def one_line_error(code: int, stderr: str) -> str:
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


BAD = [
    ("invalid-yaml", "faults: [\n  - {kind: pause", None, "invalid YAML"),
    ("not-a-list", "just a string\n", None, "expected a list of faults"),
    ("unknown-kind", "- {kind: explode, target: a, at: 0s}\n", 1, "unknown kind 'explode'"),
    (
        "unknown-param",
        "- {kind: pause, target: a, at: 0s, duration: 5s, durration: 5s}\n",
        1,
        "unknown param 'durration'",
    ),
    ("zero-duration", "- {kind: pause, target: a, at: 0s, duration: 0s}\n", 1, "must be a positive duration"),
    (
        "negative-duration",
        "- {kind: pause, target: a, at: 0s, duration: -5s}\n",
        1,
        "must be a positive duration",
    ),
    ("missing-duration", "- {kind: pause, target: a, at: 0s}\n", 1, "'duration' is required"),
    (
        "unknown-spark-deploy",
        "- {kind: pause, target: a, at: 0s, duration: 5s, spark_deploy: yarn}\n",
        1,
        "'spark_deploy' must be one of local, standalone, got 'yarn'",
    ),
    ("bad-duration", "- {kind: pause, target: a, at: 0s, duration: 5}\n", 1, "duration with a unit"),
    ("negative-at", "- {kind: pause, target: a, at: -1s, duration: 5s}\n", 1, "'at' must not be negative"),
    ("missing-at", "- {kind: pause, target: a, duration: 5s}\n", 1, "missing 'at'"),
    ("missing-target", "- {kind: pause, at: 0s, duration: 5s}\n", 1, "missing target"),
    ("empty-targets", "- {kind: pause, targets: [], at: 0s, duration: 5s}\n", 1, "missing target"),
    (
        "probability-high",
        "- {kind: pause, target: a, at: 0s, duration: 5s}\n"
        "- {kind: iptables loss, target: a, at: 0s, duration: 5s, probability: 1.5}\n",
        2,
        "'probability' must be between 0 and 1",
    ),
    (
        "probability-negative",
        "- {kind: iptables loss, target: a, at: 0s, duration: 5s, probability: -0.1}\n",
        1,
        "'probability' must be between 0 and 1",
    ),
    (
        "probability-zero",
        "- {kind: iptables loss, target: a, at: 0s, duration: 5s, probability: 0}\n",
        1,
        "must be > 0",
    ),
    (
        "bad-signal",
        "- {kind: kill, target: a, at: 0s, signal: sigterm}\n",
        1,
        "'signal' must be an upper-case",
    ),
    ("numeric-signal", "- {kind: kill, target: a, at: 0s, signal: 9}\n", 1, "'signal'"),
    ("rm-unconfirmed", "- {kind: rm, target: a, at: 0s}\n", 1, "confirm: true"),
    (
        "ports-without-proto",
        "- {kind: iptables loss, target: a, at: 0s, duration: 5s, probability: 0.1, dst_port: 80}\n",
        1,
        "need protocol tcp or udp",
    ),
    (
        "bad-cidr",
        "- {kind: iptables loss, target: a, at: 0s, duration: 5s, probability: 0.1, source: kafka-1}\n",
        1,
        "IPv4",
    ),
    (
        "bad-iface",
        "- {kind: iptables loss, target: a, at: 0s, duration: 5s, probability: 0.1, interface: 'eth0;x'}\n",
        1,
        "'interface'",
    ),
    (
        "jitter-over-time",
        "- {kind: netem delay, target: a, at: 0s, duration: 5s, time: 5}\n",
        1,
        "'jitter' (10) must not exceed",
    ),
    (
        "bad-rate",
        "- {kind: netem rate, target: a, at: 0s, duration: 5s, rate: 1mbps}\n",
        1,
        "'rate' must match",
    ),
    (
        "sub-second-restart",
        "- {kind: restart, target: a, at: 0s, timeout: 500ms}\n",
        1,
        "whole number of seconds",
    ),
    (
        "partition-self",
        "- {kind: iptables partition, target: a, peers: [a, b], at: 0s, duration: 5s}\n",
        1,
        "its own peer",
    ),
    (
        "partition-no-peers",
        "- {kind: iptables partition, target: a, at: 0s, duration: 5s}\n",
        1,
        "'peers' must name",
    ),
    (
        "stress-unknown-stressor",
        "- {kind: stress, target: a, at: 0s, duration: 5s, stressors: '--cpux 2'}\n",
        1,
        "unknown stressor or option '--cpux'",
    ),
    (
        "stress-zero-workers",
        "- {kind: stress, target: a, at: 0s, duration: 5s, stressors: '--cpu 0'}\n",
        1,
        "--cpu must be a number of workers from 1 to 1024, got '0'",
    ),
    (
        "stress-negative-workers",
        "- {kind: stress, target: a, at: 0s, duration: 5s, stressors: '--vm -1'}\n",
        1,
        "--vm must be a number of workers from 1 to 1024, got '-1'",
    ),
    (
        "stress-bad-size",
        "- {kind: stress, target: a, at: 0s, duration: 5s, stressors: '--vm 1 --vm-bytes 12x'}\n",
        1,
        "--vm-bytes must be a size like 256m, 1g or 50%, got '12x'",
    ),
    (
        "stress-timeout-short",
        "- {kind: stress, target: a, at: 0s, duration: 10s, stressors: '--cpu 1 --timeout 5s'}\n",
        1,
        "--timeout 5s is shorter than the fault's duration",
    ),
    ("stress-no-duration", "- {kind: stress, target: a, at: 0s}\n", 1, "'duration' is required"),
    (
        "disk-fill-negative-free",
        "- {kind: disk fill, target: a, at: 0s, duration: 5s, free: -1}\n",
        1,
        "'free' must be a size like 0, 64MiB or 1GiB (bytes, no sign), got -1",
    ),
    (
        "disk-fill-bad-unit",
        "- {kind: disk fill, target: a, at: 0s, duration: 5s, free: 64XB}\n",
        1,
        "'free' must be a size like 0, 64MiB or 1GiB (bytes, no sign), got '64XB'",
    ),
    (
        "disk-fill-relative-volume",
        "- {kind: disk fill, target: a, at: 0s, duration: 5s, volume: data}\n",
        1,
        "'volume' must be an absolute path (the volume's mount point), got 'data'",
    ),
    ("disk-fill-no-duration", "- {kind: disk fill, target: a, at: 0s}\n", 1, "'duration' is required"),
    (
        "disk-fill-twice-at-once",
        "- {kind: disk fill, target: a, at: 0s, duration: 10s}\n"
        "- {kind: disk fill, target: a, at: 5s, duration: 10s, free: 1MiB}\n",
        None,
        "overlaps fault #1",
    ),
    ("stop-time-zero", "- {kind: stop, target: a, at: 0s, time: 0}\n", 1, "'time' must be between 1"),
    ("kill-duration", "- {kind: kill, target: a, at: 0s, duration: 5s}\n", 1, "use restart_after"),
    (
        "lifecycle-overlap",
        "- {kind: pause, target: a, at: 0s, duration: 10s}\n"
        "- {kind: kill, target: a, at: 5s, restart_after: 5s}\n",
        None,
        "fault #2 (kill a) overlaps fault #1 (pause a)",
    ),
    (
        "quorum",
        "- {kind: stop, target: kafka-1, at: 0s, restart: true, duration: 20s}\n"
        "- {kind: pause, target: kafka-2, at: 10s, duration: 5s}\n",
        None,
        "takes down 2 Kafka brokers at once",
    ),
    ("random-without-seed", "scenario: random\nduration: 5m\ntargets: [a]\n", None, "'seed' is required"),
    (
        "random-with-rm",
        "scenario: random\nseed: 1\nduration: 5m\ntargets: [a]\nkinds: [rm]\n",
        None,
        "never random",
    ),
    (
        "random-unknown-key",
        "scenario: random\nseed: 1\nduration: 5m\ntargets: [a]\nflavour: x\n",
        None,
        "'flavour'",
    ),
]


@pytest.mark.parametrize(("name", "text", "fault", "problem"), BAD, ids=[b[0] for b in BAD])
def test_bad_scenarios_are_one_line_exit_2(
    tmp_path: Path, name: str, text: str, fault: int | None, problem: str
) -> None:
    path = tmp_path / f"{name}.yml"
    path.write_text(text)
    code, _, stderr = validate(path, "--offline")
    line = one_line_error(code, stderr)
    assert str(path) in line
    if fault is not None:
        assert f"fault #{fault}" in line
    assert problem in line


def test_unreadable_file(tmp_path: Path) -> None:
    line = one_line_error(*validate(tmp_path / "nope.yml", "--offline")[::2])
    assert "nope.yml: cannot read file" in line
    line = one_line_error(*validate(tmp_path, "--offline")[::2])  # a directory
    assert "cannot read file" in line


def test_quorum_loss_allowed_explicitly(tmp_path: Path) -> None:
    path = tmp_path / "q.yml"
    path.write_text(
        "allow_quorum_loss: true\nfaults:\n"
        "- {kind: stop, target: kafka-1, at: 0s, restart: true, duration: 20s}\n"
        "- {kind: pause, target: kafka-2, at: 10s, duration: 5s}\n"
    )
    code, out, err = validate(path, "--offline")
    assert code == 0, err
    assert out.startswith("ok:")


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "scenarios").glob("*.yml")))
def test_shipped_scenarios_are_valid(name: str) -> None:
    code, _out, err = validate(REPO / "scenarios" / f"{name}.yml", "--offline")
    assert code == 0, err


def test_shipped_scenario_shapes() -> None:
    cfg = ChaosConfig()
    default = load_scenario(REPO / "scenarios" / "default.yml", cfg).schedule
    assert 6 * 60_000 <= default.phase_ms <= 25 * 60_000  # every kind once, spaced: about 23 min
    ci = load_scenario(REPO / "scenarios" / "ci.yml", cfg).schedule
    assert ci.phase_ms <= 4 * 60_000 + 30_000  # CI runs it twice
    kinds = {a.kind for a in ci.actions}
    assert {"kill", "stop", "pause", "restart", "iptables loss", "iptables partition"} <= kinds
    for action in ci.actions:
        window = action.fault.window_ms or 0
        assert window <= 20_000 or action.kind == "stop", action
    assert {"kafka-1", "kafka-2", "kafka-3", "postgres", "spark", "producer"} | {
        "kafka-leader-most",
        "kafka-active-controller",
        "spark-master",
        "spark-worker-1",
        "spark-worker-2",
    } == {a.service for a in default.actions}
    # The standalone cluster's faults, in both: not applicable on the local deploy, where their phase ends
    # with the last fault that runs.
    for schedule in (default, ci):
        cluster = {a.service for a in schedule.actions if a.fault.spark_deploy == "standalone"}
        assert {"spark-master", "spark-worker-1", "spark-worker-2"} <= cluster
        assert {a.kind for a in schedule.actions if a.service.startswith("spark-w")} >= {
            "kill-executor",
            "kill",
            "pause",
        }
    local = load_scenario(REPO / "scenarios" / "default.yml", cfg, spark_deploy="local").schedule
    assert local.phase_ms < default.phase_ms


def test_unknown_target_is_refused_against_the_engine(bed, tmp_path: Path) -> None:
    bed.service("a")
    path = tmp_path / "t.yml"
    path.write_text(
        "- {kind: pause, target: a, at: 0s, duration: 5s}\n"
        "- {kind: iptables partition, target: a, peers: [ghost], at: 10s, duration: 5s}\n"
    )
    code, _, stderr = validate(path, env=bed.env)
    line = one_line_error(code, stderr)
    assert "fault #2" in line and "unknown target 'ghost'" in line
    path.write_text("- {kind: pause, target: all, at: 0s, duration: 5s}\n")
    line = one_line_error(*validate(path, env=bed.env)[::2])
    assert "unknown target 'all'" in line  # never "every container"


def test_plan_prints_offsets_and_touches_nothing(bed, tmp_path: Path) -> None:
    bed.service("a")
    path = tmp_path / "p.yml"
    path.write_text(
        "- {kind: pause, target: a, at: 1m30s, duration: 20s}\n- {kind: kill, target: a, at: 2m}\n"
    )
    result = runner.invoke(app, ["plan", "--scenario", str(path)], env=bed.env)
    assert result.exit_code == 0, result.stderr
    assert "T+01:30.000 -> T+01:50.000" in result.stdout
    assert "T+02:00.000 -> end of phase" in result.stdout
    assert not bed.runs_dir.exists()
    assert bed.state("a")["Running"] and not bed.state("a")["Paused"]


def test_a_fault_for_another_spark_deploy_is_recorded_not_applicable(bed, tmp_path: Path) -> None:
    """The gated fault's target does not exist here: not refused, nothing done, its own outcome and reason
    in the timeline (the deployment from --spark-deploy, else run.json); the same target without the key
    is still refused."""
    bed.service("a")
    gated = "- {kind: kill, target: ghost, at: 0s, restart_after: 1s, spark_deploy: standalone}\n"
    path = bed.scenario("- {kind: pause, target: a, at: 0s, duration: 1s}\n" + gated)
    run_dir = bed.runs_dir / "gated"
    done = bed.cli("run", "--scenario", str(path), "--run-dir", str(run_dir), "--spark-deploy", "local")
    assert done.returncode == 0, done.stderr
    lines = {line["target"]: line for line in bed.timeline(run_dir)}
    assert lines["a"]["outcome"] == "ok"
    assert lines["ghost"]["outcome"] == "not-applicable"
    assert lines["ghost"]["detail"] == "needs spark_deploy standalone; this run's is local"
    assert lines["ghost"]["call"] == [] and lines["ghost"]["container"] == ""
    assert "ghost" not in (run_dir / "chaos-journal.jsonl").read_text()  # nothing to undo
    # The run's record says which deployment it is on.
    recorded = bed.runs_dir / "recorded"
    recorded.mkdir(parents=True)
    (recorded / "run.json").write_text('{"run_id": "recorded", "topology": {"spark_deploy": "local"}}')
    dry = bed.cli("run", "--scenario", str(path), "--run-dir", str(recorded), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "not-applicable: needs spark_deploy standalone; this run's is local: nothing is done" in dry.stdout
    code, _, stderr = validate(bed.scenario(gated.replace(", spark_deploy: standalone", "")), env=bed.env)
    assert "unknown target 'ghost'" in one_line_error(code, stderr)
