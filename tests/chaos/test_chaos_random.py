"""`scenario: random`: reproducible from the seed, and never more brokers down than the quorum allows."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tools.chaos.cli import app
from tools.chaos.config import ChaosConfig
from tools.chaos.faults import DISRUPTIVE_KINDS
from tools.chaos.scenario import load_scenario
from tools.chaos.schedule import brokers_down_peak

CFG = ChaosConfig()
BROKERS_ONLY = """
scenario: random
seed: {seed}
duration: 30m
kinds: [kill, stop, pause, restart, iptables partition, iptables loss]
targets: [kafka-1, kafka-2, kafka-3]
interval: {{min: 5s, max: 20s}}
fault_duration: {{min: 10s, max: 40s}}
recovery_gap: {gap}
allow_quorum_loss: {allow}
"""


def plan(tmp_path: Path, seed: int, allow: bool = False, gap: str = "20s") -> list[dict[str, object]]:
    path = tmp_path / f"r{seed}-{allow}.yml"
    path.write_text(BROKERS_ONLY.format(seed=seed, allow=str(allow).lower(), gap=gap))
    return load_scenario(path, CFG).schedule.describe()


def peak(tmp_path: Path, seed: int, allow: bool, gap_ms: int) -> int:
    path = tmp_path / f"p{seed}.yml"
    path.write_text(BROKERS_ONLY.format(seed=seed, allow=str(allow).lower(), gap=f"{gap_ms}ms"))
    scenario = load_scenario(path, CFG)
    faults = list({a.fault.index: a.fault for a in scenario.schedule.actions}.values())
    return brokers_down_peak(faults, scenario.schedule.phase_ms, CFG.is_broker, gap_ms)[0]


def test_same_seed_same_plan_other_seed_other_plan(tmp_path: Path) -> None:
    first, again = plan(tmp_path, 7), plan(tmp_path, 7)
    assert first == again and len(first) > 20
    assert plan(tmp_path, 8) != first


def test_never_more_than_one_broker_down_by_default(tmp_path: Path) -> None:
    for seed in range(40):
        assert peak(tmp_path, seed, allow=False, gap_ms=20_000) <= 1, seed


def test_allow_quorum_loss_lifts_the_limit(tmp_path: Path) -> None:
    assert max(peak(tmp_path, seed, allow=True, gap_ms=0) for seed in range(10)) >= 2


def test_plan_has_disruptive_faults_and_stays_inside_the_phase(tmp_path: Path) -> None:
    rows = plan(tmp_path, 3)
    assert {r["kind"] for r in rows} & DISRUPTIVE_KINDS
    assert all(int(r["until_ms"]) <= 30 * 60_000 for r in rows)  # type: ignore[call-overload]
    assert not any(r["held_until_end"] for r in rows)


def test_cli_seed_and_duration_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "r.yml"
    path.write_text(BROKERS_ONLY.format(seed=1, allow="false", gap="20s"))
    runner = CliRunner()

    def cli_plan(*extra: str) -> dict[str, object]:
        result = runner.invoke(app, ["plan", "--scenario", str(path), "--offline", "--json", *extra])
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    base = cli_plan()
    assert base["seed"] == 1 and base["phase_ms"] == 30 * 60_000
    other = cli_plan("--seed", "99", "--duration", "5m")
    assert other["seed"] == 99 and other["phase_ms"] == 5 * 60_000
    assert cli_plan("--seed", "99", "--duration", "5m") == other
    assert all(f["until_ms"] <= 5 * 60_000 for f in other["faults"])  # type: ignore[attr-defined,index]
