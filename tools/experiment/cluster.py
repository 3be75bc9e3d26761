"""What the running cluster says about the topic, recorded in run.json when a run is created."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource

from tools.errors import EXIT_BAD_INPUT, ToolError


def topic_durability(bootstrap_servers: str, topic: str, timeout_s: float = 15.0) -> dict[str, int]:
    """The topic's replication factor (replicas per partition) and min.insync.replicas, from the brokers.

    Read-only; a missing topic or an unreachable cluster is bad input (exit 2): nothing was started yet.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    try:
        md = admin.list_topics(topic=topic, timeout=timeout_s)
        info = md.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise ToolError(f"topic {topic!r} does not exist on {bootstrap_servers}", EXIT_BAD_INPUT)
        replicas = {len(p.replicas) for p in info.partitions.values()}
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        configs = admin.describe_configs([resource])[resource].result(timeout=timeout_s)
    except (KafkaException, TimeoutError) as exc:
        why = exc.args[0] if exc.args else "timed out"
        raise ToolError(
            f"cannot read topic {topic!r} from Kafka at {bootstrap_servers}: {why}",
            EXIT_BAD_INPUT,
        ) from None
    min_isr = configs.get("min.insync.replicas")
    return {
        # Partitions normally share one replication factor; the smallest is the one that bounds safety.
        "replication_factor": min(replicas),
        "min_insync_replicas": int(min_isr.value) if min_isr is not None and min_isr.value else 1,
    }
