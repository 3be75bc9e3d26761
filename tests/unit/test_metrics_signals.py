"""The signals a run saves, and the metrics ports the tools and the playbooks share."""

from __future__ import annotations

from pathlib import Path

import yaml

from tools.metrics.endpoints import INJECTOR_PORT, PRODUCER_PORT, PROMETHEUS_URL, parse_address
from tools.metrics.injector import component_of
from tools.metrics.save import MAX_POINTS, step_for
from tools.metrics.signals import BY_NAME, COMPONENTS, SIGNALS, UNITS

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {
    "kafka_under_replicated_partitions",
    "kafka_offline_partitions",
    "kafka_isr_shrinks_per_second",
    "kafka_isr_expands_per_second",
    "kafka_leader_elections_per_second",
    "kafka_active_controllers",
    "kafka_fenced_brokers",
    "kafka_produce_latency_p99_seconds",
    "jvm_gc_pause_seconds_per_second",
    "spark_input_rows_per_second",
    "spark_processed_rows_per_second",
    "spark_batch_duration_seconds",
    "consumer_lag",
    "pg_commits_per_second",
    "pg_connections",
    "producer_acked_per_second",
    "producer_failed_per_second",
    "producer_in_flight",
    "producer_ack_latency_p99_seconds",
    "chaosbed_fault_active",
}


def test_every_signal_the_report_reads_is_defined_once_with_a_known_unit_and_component() -> None:
    assert len(BY_NAME) == len(SIGNALS)
    assert set(BY_NAME) >= REQUIRED
    for signal in SIGNALS:
        assert signal.unit in UNITS, signal.name
        assert signal.component in COMPONENTS, signal.name
        assert signal.help.endswith(".") and "\n" not in signal.help, signal.name
        assert signal.query.count("(") == signal.query.count(")"), signal.name


def test_the_ports_are_the_playbooks_ports() -> None:
    shared = yaml.safe_load((ROOT / "playbooks/group_vars/all/chaosbed.yml").read_text())
    ports = shared["chaosbed_metrics_ports"]
    assert (ports["injector"], ports["producer"]) == (INJECTOR_PORT, PRODUCER_PORT)
    assert shared["chaosbed_prometheus_url"] == PROMETHEUS_URL


def test_fault_targets_map_to_their_component() -> None:
    assert [component_of(s) for s in ("kafka-2", "kafka-controller-1", "spark", "postgres", "producer")] == [
        "kafka",
        "kafka",
        "spark",
        "postgres",
        "producer",
    ]


def test_listen_addresses() -> None:
    assert parse_address("0.0.0.0:9466") == ("0.0.0.0", 9466)
    assert parse_address(":9465") == ("127.0.0.1", 9465)
    assert parse_address("off") is None and parse_address("") is None
    for bad in ("9466", "host:", "host:99999"):
        try:
            parse_address(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_a_long_window_gets_a_coarser_step() -> None:
    assert step_for(0, 3600) == 2.0
    assert (86400 * 7) / step_for(0, 86400 * 7) <= MAX_POINTS
