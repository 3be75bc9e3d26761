"""benchmarks/recovery_plan.py: the recovery section injects every fault class of default.yml N times,
alone, in a scenario the chaos tools accept; the bench's worst/p95/median of a class."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks import recovery_plan  # noqa: E402
from benchmarks.bench import spread  # noqa: E402
from tools.chaos.config import ChaosConfig  # noqa: E402
from tools.chaos.scenario import load_scenario  # noqa: E402

DEFAULT = yaml.safe_load((REPO / "scenarios" / "default.yml").read_text())


def test_every_class_of_the_default_scenario_is_injected_five_times(tmp_path: Path) -> None:
    plan = recovery_plan.recovery_scenario(DEFAULT, repeats=5, gap_s=45)
    classes = Counter(f["name"].rsplit(" #", 1)[0] for f in plan["faults"])
    expected = {
        recovery_plan.fault_class(f["kind"], f["target"])
        for f in DEFAULT["faults"]
        if "after" not in f and "concurrent_with" not in f and "spark_deploy" not in f
    }
    assert set(classes) == expected
    assert set(classes.values()) == {5}
    # The chaos tools' own loader accepts it (spacing, quorum and conflict checks included).
    path = tmp_path / "recovery.yml"
    path.write_text(yaml.safe_dump(plan))
    scenario = load_scenario(path, ChaosConfig.from_env())
    assert len(scenario.schedule.actions) == len(plan["faults"])


def test_broker_faults_rotate_over_the_brokers_and_partitions_follow() -> None:
    plan = recovery_plan.recovery_scenario(DEFAULT, repeats=3, gap_s=45)
    parts = [f for f in plan["faults"] if f["kind"] == "iptables partition"]
    assert [f["target"] for f in parts] == ["kafka-2", "kafka-3", "kafka-1"]
    for fault in parts:
        assert sorted(fault["peers"] + [fault["target"]]) == ["kafka-1", "kafka-2", "kafka-3"]


def test_faults_never_overlap() -> None:
    plan = recovery_plan.recovery_scenario(DEFAULT, repeats=2, gap_s=45)
    starts = [recovery_plan.parse_duration(f["at"]) / 1000 for f in plan["faults"]]
    windows = [recovery_plan._window_s(f) for f in plan["faults"]]
    for (a, w), b in zip(zip(starts, windows, strict=True), starts[1:], strict=False):
        assert b >= a + w + 45


def test_spread_is_worst_p95_median() -> None:
    assert spread([2.0, 1.0, 3.0, 5.0, 4.0]) == {"worst": 5.0, "p95": 4.8, "median": 3.0}
    assert spread([]) == {"worst": None, "p95": None, "median": None}
