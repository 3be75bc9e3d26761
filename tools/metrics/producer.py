"""The producer's metrics: sent, acknowledged, failed, indeterminate, in flight, and the ack latency.

Counts are read at scrape time from what the producer already keeps (the ledger's durable counts and
librdkafka's queue length), so the hot send path only observes the latency of each delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

# From a healthy ack (tens of ms) to an outage ridden out (tens of seconds).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class ProducerCounts(Collector):
    """sent/acked/failed/indeterminate totals and the in-flight gauge, read when Prometheus scrapes."""

    def __init__(self, read: Callable[[], tuple[int, int, int, int, int]]) -> None:
        self.read = read  # -> (sent, acked, failed, indeterminate, in_flight)

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        sent, acked, failed, info, in_flight = self.read()
        for name, value, doc in (
            ("chaosbed_producer_sent", sent, "Events handed to librdkafka."),
            ("chaosbed_producer_acked", acked, "Events acknowledged by Kafka (durable in the ledger)."),
            ("chaosbed_producer_failed", failed, "Events whose send definitely failed (in the ledger)."),
            ("chaosbed_producer_indeterminate", info, "Events whose outcome is unknown (in the ledger)."),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily(
            "chaosbed_producer_in_flight", "Events sent and not yet acknowledged or failed.", value=in_flight
        )


class ProducerMetrics:
    def __init__(self, read: Callable[[], tuple[int, int, int, int, int]]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(ProducerCounts(read))
        self.ack_latency = Histogram(
            "chaosbed_producer_ack_latency_seconds",
            "Time from send to acknowledgement.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
