"""A real run's saved metrics (tests/fixtures/data: a broker SIGKILL, then a broker pause, on the pipeline)
re-rendered offline: the report's component lines match the saved series, computed here independently,
and the HTML page shows every plot in Chromium."""

from __future__ import annotations

import json
import re
import shutil
from itertools import pairwise
from pathlib import Path

import pytest
from fixtures.chromium import assert_report_page_renders
from fixtures.cli import run_tools

RUN = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "20261204T165224Z-metrics-kill"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("saved") / RUN.name
    shutil.copytree(RUN, run_dir)
    res = run_tools("report", run_dir, "--offline", "--format", "html")
    assert res.returncode == 0, res.stderr
    return run_dir


def fault(fault_id: str) -> tuple[int, int]:
    for line in (RUN / "timeline.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["fault_id"].endswith(fault_id):
            return int(record["start_ms"]), int(record["end_ms"])
    raise AssertionError(fault_id)


def total(signal: str) -> list[tuple[int, float]]:
    """The signal summed over its series per timestamp, from the saved file."""
    sums: dict[int, float] = {}
    for series in json.loads((RUN / "metrics" / f"{signal}.json").read_text())["result"]:
        for t, v in series["values"]:
            sums[round(float(t) * 1000)] = sums.get(round(float(t) * 1000), 0.0) + float(v)
    return sorted(sums.items())


def line_of(text: str, fault_id: str, component: str) -> str:
    entry = text.split(f"- **{fault_id}**", 1)[1].split("\n- **", 1)[0]
    found = re.search(rf"^  - {re.escape(component)}: (.*)$", entry, re.M)
    assert found, entry
    return found.group(1)


def test_under_replicated_partitions_after_the_broker_kill(rendered: Path) -> None:
    start, end = fault("01-kafka-2")
    points = total("kafka_under_replicated_partitions")
    assert all(v == 0 for t, v in points if start - 10_000 <= t <= start)  # healthy before the kill
    rise = next(t for t, v in points if t > start and v > 0)
    peak = max(v for t, v in points if start < t <= end + 60_000)
    back = next(t for t, v in points if t > rise and v == 0)
    kafka = line_of(
        (rendered / "RESILIENCE_REPORT.md").read_text(), "01-kafka-2", "Kafka brokers and controllers"
    )
    assert kafka.startswith(
        f"under-replicated partitions 0 → {peak:,.0f} from +{(rise - start) / 1000:.1f} s"
    ), kafka
    assert (
        f"back at +{(back - start) / 1000:.1f} s ({(back - end) / 1000:.1f} s after the fault ended)" in kafka
    )


def test_leadership_moves_are_counted(rendered: Path) -> None:
    start, _ = fault("01-kafka-2")
    kafka = line_of(
        (rendered / "RESILIENCE_REPORT.md").read_text(), "01-kafka-2", "Kafka brokers and controllers"
    )
    moved = re.search(r"(\d+) partition leaderships moved from \+([\d.]+) s", kafka)
    assert moved, kafka
    # The saved rate, integrated over the seconds the report names: the same count.
    points = total("kafka_leader_elections_per_second")
    since = start + round(float(moved.group(2)) * 1000)
    span = [(t, v) for t, v in points if t >= since - 50]  # the report rounds to 0.1 s
    count = 0.0
    for (t, v), (t2, _) in pairwise(span):
        if v == 0:
            break
        count += v * (t2 - t) / 1000
    assert int(moved.group(1)) == round(count) > 0


def test_findings_and_the_html_page(rendered: Path, tmp_path: Path) -> None:
    text = (rendered / "RESILIENCE_REPORT.md").read_text()
    assert "no `metrics/` directory" not in text
    assert "![Component signals around 01-kafka-2 (kill of kafka-2)" in text
    findings = text.split("## 6. Findings", 1)[1].split("\n## ", 1)[0]
    kafka = line_of(text, "01-kafka-2", "Kafka brokers and controllers")
    moved = re.search(r"(\d+) partition leaderships moved from \+([\d.]+) s", kafka)
    short = re.search(r"under-replicated partitions 0 → (\d+) from \+[\d.]+ s, back at \+([\d.]+) s", kafka)
    assert moved and short, kafka
    # The finding says what a Kafka user asks first, with the numbers of the component line.
    expected = (
        f"leadership of {moved.group(1)} partitions moved from {moved.group(2)} s after the start; up to "
        f"{short.group(1)} partitions under-replicated, all in sync again {short.group(2)} s after the start"
    )
    assert "Killing kafka-2 (SIGKILL) (01-kafka-2): stalled producer acknowledgements" in findings, findings
    assert expected in findings, findings
    dom = assert_report_page_renders(rendered / "RESILIENCE_REPORT.html", tmp_path / "shot.png", min_images=4)
    assert dom.count('alt="Component signals around') == 2
