"""The recovery section's scenario: every fault class of a scenario (default.yml), injected N times.

    .venv/bin/python benchmarks/recovery_plan.py [--source scenarios/default.yml] [--repeats 5] > plan.yml

A fault class is a kind on a kind of target: broker kill, broker pause, controller kill, spark kill,
postgres stop, ... The first fault of each class in the source is its template; faults fired by a
pipeline trigger or declared concurrent are left out (they measure replays and overlaps, not one
fault's recovery), and so are those of one Spark deployment (`spark_deploy:`; deployments.py measures the
cluster's). The copies go round robin over the classes and, for broker faults, over the
brokers, each alone: the next starts only after the previous one's window plus --gap.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tools.chaos.durations import format_duration, parse_duration  # noqa: E402

BROKERS = ("kafka-1", "kafka-2", "kafka-3")
# tools/recovery.py measures each fault against the 60 s before the first one.
FIRST_AT_S = 65
# A fault without its own end (e.g. a kill restarted at once) still disturbs its target this long.
MIN_WINDOW_S = 10


def target_class(target: str) -> str:
    """broker, controller, or the service itself (spark, postgres, producer, ...)."""
    if target == "kafka-active-controller" or target.startswith("kafka-controller"):
        return "controller"
    if target.startswith("kafka"):
        return "broker"
    return target


def fault_class(kind: str, target: str) -> str:
    return f"{target_class(target)} {kind}"


def _window_s(fault: dict[str, Any]) -> float:
    spans = [parse_duration(fault[key]) / 1000 for key in ("duration", "restart_after") if key in fault]
    return max([MIN_WINDOW_S, *spans])


def templates(source: dict[str, Any]) -> list[dict[str, Any]]:
    """One fault per class, in the order the source first uses them."""
    seen: dict[str, dict[str, Any]] = {}
    for fault in source.get("faults") or []:
        if "after" in fault or "concurrent_with" in fault or "spark_deploy" in fault:
            continue
        seen.setdefault(fault_class(str(fault["kind"]), str(fault["target"])), fault)
    return list(seen.values())


def _on_broker(fault: dict[str, Any], broker: str) -> dict[str, Any]:
    """The fault moved to `broker`; a partition's peers become the other brokers."""
    moved = {**fault, "target": broker}
    if "peers" in fault:
        moved["peers"] = [b for b in BROKERS if b != broker]
    return moved


def recovery_scenario(source: dict[str, Any], repeats: int, gap_s: float) -> dict[str, Any]:
    faults: list[dict[str, Any]] = []
    at = float(FIRST_AT_S)
    for round_no in range(repeats):
        for template in templates(source):
            fault = dict(template)
            fault.pop("at", None)
            target = str(fault["target"])
            if target in BROKERS:
                fault = _on_broker(fault, BROKERS[(BROKERS.index(target) + round_no) % len(BROKERS)])
            fault["name"] = f"{fault_class(str(fault['kind']), target)} #{round_no + 1}"
            fault["at"] = format_duration(int(at * 1000))
            faults.append(fault)
            at += _window_s(fault) + gap_s
    return {
        "name": "bench-recovery",
        "description": f"each fault class of {source.get('name', 'the source')} {repeats} times, alone",
        "recovery_gap": source.get("recovery_gap", "20s"),
        "faults": faults,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path, default=REPO / "scenarios" / "default.yml")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gap", type=float, default=45, help="seconds between one fault's end and the next")
    args = parser.parse_args()
    doc = yaml.safe_load(args.source.read_text())
    print(yaml.safe_dump(recovery_scenario(doc, args.repeats, args.gap), sort_keys=False), end="")


if __name__ == "__main__":
    main()
