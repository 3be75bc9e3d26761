"""The default scenario overlaps only what it declares concurrent: each fault's recovery time is its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.chaos.config import ChaosConfig
from tools.chaos.scenario import ScenarioError, load_scenario
from tools.chaos.schedule import Action

REPO = Path(__file__).resolve().parents[2]


def settle_s(service: str) -> int:
    """How long after a fault's window its effect may last: the slowest recoveries benchmarks/README.md
    measured (a Spark driver's first batch after a restart, a broker rejoining its ISRs), with a margin."""
    if service.startswith("spark"):
        return 40
    return 25 if service.startswith("kafka") else 20


def undeclared_overlaps(actions: tuple[Action, ...], phase_ms: int) -> list[str]:
    out = []
    for i, first in enumerate(actions):
        busy_until = first.end_ms(phase_ms) + settle_s(first.service) * 1000
        for later in actions[i + 1 :]:
            declared = (
                first.fault.name == later.fault.concurrent_with
                or later.fault.name == first.fault.concurrent_with
            )
            if later.at_ms < busy_until and not declared:
                out.append(f"{later.short_id} starts before {first.short_id} has settled")
    return out


def test_default_overlaps_only_declared_faults() -> None:
    schedule = load_scenario(REPO / "scenarios" / "default.yml", ChaosConfig()).schedule
    assert undeclared_overlaps(schedule.actions, schedule.phase_ms) == []
    declared = {(a.fault.name, a.fault.concurrent_with) for a in schedule.actions if a.fault.concurrent_with}
    # The restarted driver killed at its first commit; a broker stop + a Spark kill; on the standalone
    # cluster, a broker stop + a worker kill.
    assert len(declared) == 3
    assert all(row["concurrent_with"] is None or row["kind"] == "kill" for row in schedule.describe())


def test_concurrent_with_must_name_another_fault(tmp_path: Path) -> None:
    path = tmp_path / "s.yml"
    path.write_text(
        "- {name: a, kind: pause, target: spark, at: 0s, duration: 5s}\n"
        "- {name: b, kind: pause, target: postgres, at: 1s, duration: 5s, concurrent_with: nope}\n"
    )
    with pytest.raises(ScenarioError, match="fault #2: 'concurrent_with': no other fault is named 'nope'"):
        load_scenario(path, ChaosConfig())
    path.write_text(path.read_text().replace("nope", "a"))
    rows = load_scenario(path, ChaosConfig()).schedule.describe()
    assert [r["concurrent_with"] for r in rows] == [None, "a"]
