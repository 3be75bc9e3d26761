"""The signals a run saves from Prometheus: one home for their names, queries, units and components.

Every scraped series carries `service` (the chaosbed service: kafka-1, kafka-controller-2, spark, postgres,
producer, injector) and `component` (kafka, spark, postgres, producer, chaos); Kafka's also `role`
(broker or controller). A query keeps the labels a reader needs (per broker: `service`; per partition:
`topic`, `partition`) and sums the rest away. The saved format: docs/metrics.md.
"""

from __future__ import annotations

from dataclasses import dataclass

# Counters become rates over this window: a few scrapes (roles/metrics: metrics_scrape_interval).
RATE_WINDOW = "10s"
UNITS = ("count", "seconds", "bytes", "ratio", "per_second")
COMPONENTS = ("kafka", "spark", "postgres", "producer", "chaos")


@dataclass(frozen=True)
class Signal:
    name: str
    help: str
    unit: str
    component: str
    query: str


def _rate(metric: str, by: str = "") -> str:
    group = f" by ({by})" if by else ""
    return f"sum{group} (rate({metric}[{RATE_WINDOW}]))"


def _spark_streaming(gauge: str) -> str:
    # Spark's PrometheusServlet: metrics_<namespace>_driver_spark_streaming_<query name>_<gauge>_Number.
    return f'max({{__name__=~"metrics_chaosbed_driver_spark_streaming_.+_{gauge}_Number"}})'


SIGNALS: tuple[Signal, ...] = (
    Signal(
        "kafka_under_replicated_partitions",
        "Partitions a broker leads whose ISR is smaller than their replica set, per broker.",
        "count",
        "kafka",
        "sum by (service) (kafka_server_replicamanager_underreplicatedpartitions)",
    ),
    Signal(
        "kafka_offline_partitions",
        "Partitions without a leader, as the active controller counts them.",
        "count",
        "kafka",
        "max(kafka_controller_kafkacontroller_offlinepartitionscount)",
    ),
    Signal(
        "kafka_isr_shrinks_per_second",
        "ISR shrinks per second, per broker (a follower dropped out of a partition's in-sync replicas).",
        "per_second",
        "kafka",
        _rate("kafka_server_replicamanager_isrshrinks_total", "service"),
    ),
    Signal(
        "kafka_isr_expands_per_second",
        "ISR expands per second, per broker (a follower caught up and rejoined the in-sync replicas).",
        "per_second",
        "kafka",
        _rate("kafka_server_replicamanager_isrexpands_total", "service"),
    ),
    Signal(
        "kafka_leader_elections_per_second",
        "Partition leadership changes per second over all brokers (leaders gained, summed over brokers).",
        "per_second",
        "kafka",
        f"sum(clamp_min(delta(kafka_server_replicamanager_leadercount[{RATE_WINDOW}]), 0))"
        f" / {RATE_WINDOW.removesuffix('s')}",
    ),
    Signal(
        "kafka_active_controllers",
        "KRaft controllers that say they are the active one, summed (1 when healthy).",
        "count",
        "kafka",
        "sum(kafka_controller_kafkacontroller_activecontrollercount)",
    ),
    Signal(
        "kafka_fenced_brokers",
        "Brokers the active controller has fenced (missed heartbeats).",
        "count",
        "kafka",
        "max(kafka_controller_kafkacontroller_fencedbrokercount)",
    ),
    Signal(
        "kafka_produce_latency_p99_seconds",
        "99th percentile of a produce request's total time on the broker, per broker.",
        "seconds",
        "kafka",
        "max by (service) "
        '(kafka_network_requestmetrics_totaltimems{request="Produce",quantile="0.99"}) / 1000',
    ),
    Signal(
        "jvm_gc_pause_seconds_per_second",
        "Seconds per second the Kafka JVMs spent in garbage collection, per node.",
        "per_second",
        "kafka",
        _rate("jvm_gc_collection_seconds_sum", "service"),
    ),
    Signal(
        "spark_input_rows_per_second",
        "Rows per second arriving at the streaming query (its last micro-batch).",
        "per_second",
        "spark",
        _spark_streaming("inputRate_total"),
    ),
    Signal(
        "spark_processed_rows_per_second",
        "Rows per second the streaming query processed (its last micro-batch).",
        "per_second",
        "spark",
        _spark_streaming("processingRate_total"),
    ),
    Signal(
        "spark_batch_duration_seconds",
        "Duration of the streaming query's last micro-batch.",
        "seconds",
        "spark",
        _spark_streaming("latency") + " / 1000",
    ),
    Signal(
        "consumer_lag",
        "Records in Kafka the sink has not committed yet, per partition (log end offset minus the offset "
        "the sink's newest batch ended at).",
        "count",
        "spark",
        "max by (topic, partition) (kafka_log_log_logendoffset) - on (topic, partition) "
        "max by (topic, partition) (chaosbed_sink_end_offset)",
    ),
    Signal(
        "pg_commits_per_second",
        "Transactions committed per second in the chaosbed database.",
        "per_second",
        "postgres",
        _rate('pg_stat_database_xact_commit{datname="chaosbed"}'),
    ),
    Signal(
        "pg_connections",
        "Backends connected to the chaosbed database.",
        "count",
        "postgres",
        'sum(pg_stat_database_numbackends{datname="chaosbed"})',
    ),
    Signal(
        "producer_sent_per_second",
        "Events the producer handed to librdkafka per second.",
        "per_second",
        "producer",
        _rate("chaosbed_producer_sent_total"),
    ),
    Signal(
        "producer_acked_per_second",
        "Events acknowledged by Kafka per second (recorded in the ledger).",
        "per_second",
        "producer",
        _rate("chaosbed_producer_acked_total"),
    ),
    Signal(
        "producer_failed_per_second",
        "Events per second whose send definitely failed (recorded in the ledger).",
        "per_second",
        "producer",
        _rate("chaosbed_producer_failed_total"),
    ),
    Signal(
        "producer_indeterminate_per_second",
        "Events per second whose outcome is unknown (timed out or purged; recorded in the ledger).",
        "per_second",
        "producer",
        _rate("chaosbed_producer_indeterminate_total"),
    ),
    Signal(
        "producer_in_flight",
        "Events sent and not yet acknowledged or failed (librdkafka's queue).",
        "count",
        "producer",
        "sum(chaosbed_producer_in_flight)",
    ),
    Signal(
        "producer_ack_latency_p99_seconds",
        "99th percentile of the time from send to acknowledgement.",
        "seconds",
        "producer",
        "histogram_quantile(0.99, sum by (le) "
        f"(rate(chaosbed_producer_ack_latency_seconds_bucket[{RATE_WINDOW}])))",
    ),
    Signal(
        "chaosbed_fault_active",
        "1 while a fault is applied, per fault (name), kind, target service and component.",
        "count",
        "chaos",
        "max by (fault, kind, target, component) (chaosbed_fault_active)",
    ),
)

BY_NAME: dict[str, Signal] = {s.name: s for s in SIGNALS}
