"""Prometheus after site.yml: every component scraped, and a window saved in the run's format."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import requests

from tools.metrics.endpoints import PROMETHEUS_URL
from tools.metrics.save import INDEX_FILE, save_metrics
from tools.metrics.signals import BY_NAME
from tools.run.layout import METRICS_DIR

from .conftest import ROOT, Pipeline

# Scraped from site.yml on; the producer and the injector only while an experiment runs.
ALWAYS_UP = {
    ("kafka", "kafka-controller-1"),
    ("kafka", "kafka-controller-2"),
    ("kafka", "kafka-controller-3"),
    ("kafka", "kafka-1"),
    ("kafka", "kafka-2"),
    ("kafka", "kafka-3"),
    ("spark", "spark"),
    ("spark-executors", "spark"),
    ("postgres", "postgres"),
}
FORMAT_KEYS = {"signal", "help", "unit", "component", "query", "start", "end", "step", "result"}


def _up() -> dict[tuple[str, str], str]:
    resp = requests.get(f"{PROMETHEUS_URL}/api/v1/query", params={"query": "up"}, timeout=10)
    resp.raise_for_status()
    return {
        (r["metric"]["job"], r["metric"]["service"]): r["value"][1] for r in resp.json()["data"]["result"]
    }


def test_prometheus_scrapes_every_component(pipeline: Pipeline) -> None:
    # A target restarted by site.yml counts as up from its next scrape (every 2 s): wait for it, boundedly.
    deadline = time.monotonic() + 60
    up = _up()
    while {k for k in ALWAYS_UP if up.get(k) != "1"} and time.monotonic() < deadline:
        time.sleep(2)
        up = _up()
    assert {k: up.get(k) for k in ALWAYS_UP} == dict.fromkeys(ALWAYS_UP, "1")
    # The producer and the fault injector are scrape targets too (down between experiments).
    assert {("producer", "producer"), ("injector", "injector")} <= set(up)


def _sink_partitions(topic: str) -> set[str]:
    """Partitions of `topic` whose sink end offset Prometheus has now (the newest progress report's)."""
    query = f'chaosbed_sink_end_offset{{topic="{topic}"}}'
    resp = requests.get(f"{PROMETHEUS_URL}/api/v1/query", params={"query": query}, timeout=10)
    resp.raise_for_status()
    return {r["metric"]["partition"] for r in resp.json()["data"]["result"]}


def test_a_saved_window_has_the_documented_format(pipeline: Pipeline, tmp_path: Path) -> None:
    # The newest progress report may be an earlier test's query on another topic: a few events make the
    # pipeline's own query report one (bounded wait for the scrape).
    produced = subprocess.run(
        [str(Path(sys.executable).parent / "tools"), "produce", "--runs-root", str(tmp_path / "runs"),
         "--count", "600", "--rate", "0", "--bootstrap-servers", pipeline.bootstrap_servers,
         "--topic", pipeline.topic, "--postgres-dsn", pipeline.postgres_dsn],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert produced.returncode == 0, produced.stderr
    deadline = time.monotonic() + 120
    while len(_sink_partitions(pipeline.topic)) < 6 and time.monotonic() < deadline:
        time.sleep(2)
    end = time.time()
    names = ("kafka_under_replicated_partitions", "consumer_lag", "pg_connections")
    saved = save_metrics(tmp_path, PROMETHEUS_URL, end - 60, end, signals=[BY_NAME[n] for n in names])
    assert saved.saved == list(names) and saved.failed == {}
    index = json.loads((tmp_path / METRICS_DIR / INDEX_FILE).read_text())
    assert index["prometheus"] == PROMETHEUS_URL and index["signals"] == list(names)
    for name in names:
        data = json.loads((tmp_path / METRICS_DIR / f"{name}.json").read_text())
        assert set(data) == FORMAT_KEYS
        assert data["signal"] == name and data["query"] == BY_NAME[name].query
        assert data["result"], name  # every broker, partition and the database have series
    lag = json.loads((tmp_path / METRICS_DIR / "consumer_lag.json").read_text())["result"]
    assert {r["metric"]["partition"] for r in lag if r["metric"]["topic"] == pipeline.topic} == {
        str(p) for p in range(6)
    }
    urp_file = tmp_path / METRICS_DIR / "kafka_under_replicated_partitions.json"
    urp = json.loads(urp_file.read_text())["result"]
    assert {r["metric"]["service"] for r in urp} == {"kafka-1", "kafka-2", "kafka-3"}
