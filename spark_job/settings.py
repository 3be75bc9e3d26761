"""The job's settings, read from the environment (the spark role sets them)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

# The source's Kafka client settings when the role sets none (a job started by hand): the same values as
# spark_kafka_properties in roles/spark/defaults/main.yml (a unit test ties them). Why: docs/tuning.md.
KAFKA_PROPERTIES: dict[str, str] = {
    "fetch.max.wait.ms": "10",
    "request.timeout.ms": "1000",
    "default.api.timeout.ms": "2000",
    "socket.connection.setup.timeout.ms": "1000",
    "socket.connection.setup.timeout.max.ms": "3000",
    "reconnect.backoff.ms": "500",
    "reconnect.backoff.max.ms": "1000",
    "retry.backoff.ms": "50",
    "retry.backoff.max.ms": "250",
    "metadata.max.age.ms": "500",
}


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str
    topic: str
    checkpoint: str
    postgres_dsn: str
    sink_mode: str  # "upsert" (idempotent) or "append" (the unsafe-sink profile)
    starting_offsets: str
    max_offsets_per_trigger: int
    trigger_interval: str
    master: str
    driver_memory: str
    jars_dir: str
    # The image's class-data-sharing archive (not there on the VM target: the driver starts without it).
    cds_archive: str
    fail_on_data_loss: bool
    poll_timeout_ms: int
    # Spark's retries of the driver's offset lookup, and the wait between them.
    fetch_offset_retries: int
    fetch_offset_retry_interval_ms: int
    sink_retry_seconds: float
    # unsafe-offsets profile: forget the checkpoint at every start.
    reset_checkpoint: bool
    # Test failpoint: "crash-after-commit[:<run id>]" kills the driver once, right after the
    # sink committed a batch (of that run) and before Spark's commit log records it.
    failpoint: str
    # The Kafka client settings of the source (names without `kafka.`): the role's spark_kafka_properties.
    kafka_properties: dict[str, str] = field(default_factory=lambda: dict(KAFKA_PROPERTIES))
    # Any other Kafka client setting, e.g. {"check.crcs": "false"}: set over kafka_properties.
    kafka_options: dict[str, str] = field(default_factory=dict)
    # More Spark settings of the application (the role's spark_standalone_conf on a standalone cluster:
    # executor sizes, task retries, the driver's address).
    spark_conf: dict[str, str] = field(default_factory=dict)
    # Spark's UI port, with its Prometheus endpoints (roles/prometheus scrapes them); 0: no UI.
    ui_port: int = 0

    def kafka_client(self) -> dict[str, str]:
        """Every Kafka client setting of the source: the properties, then the options over them."""
        return {**self.kafka_properties, **self.kafka_options}

    @classmethod
    def from_env(cls) -> Settings:
        mode = _env("CHAOSBED_SINK_MODE", "upsert")
        if mode not in ("upsert", "append"):
            raise SystemExit(f"error: CHAOSBED_SINK_MODE must be upsert or append, not {mode!r}")
        properties = _json_object("CHAOSBED_KAFKA_PROPERTIES", KAFKA_PROPERTIES)
        options = _json_object("CHAOSBED_KAFKA_OPTIONS", {})
        client = {**properties, **options}
        request_ms = int(client.get("request.timeout.ms", "30000"))
        api_ms = int(client.get("default.api.timeout.ms", "60000"))
        if api_ms < request_ms:  # the Kafka clients refuse it, and the query would never start
            raise SystemExit("error: the Kafka source's default.api.timeout.ms must be >= request.timeout.ms")
        return cls(
            bootstrap_servers=_env("CHAOSBED_BOOTSTRAP_SERVERS", "kafka-1:19092,kafka-2:19092,kafka-3:19092"),
            topic=_env("CHAOSBED_TOPIC", "events"),
            checkpoint=_env("CHAOSBED_CHECKPOINT", "/checkpoint/events"),
            postgres_dsn=_env("CHAOSBED_POSTGRES_DSN", "host=postgres dbname=chaosbed user=chaosbed"),
            sink_mode=mode,
            starting_offsets=_env("CHAOSBED_STARTING_OFFSETS", "earliest"),
            max_offsets_per_trigger=int(_env("CHAOSBED_MAX_OFFSETS_PER_TRIGGER", "20000")),
            trigger_interval=_env("CHAOSBED_TRIGGER_INTERVAL", "500 milliseconds"),
            master=_env("CHAOSBED_SPARK_MASTER", "local[6,4]"),
            driver_memory=_env("CHAOSBED_DRIVER_MEMORY", "1g"),
            jars_dir=_env("CHAOSBED_SPARK_JARS", "/opt/spark-jars"),
            cds_archive=_env("CHAOSBED_SPARK_CDS_ARCHIVE", "/opt/spark-cds/spark.jsa"),
            fail_on_data_loss=_env("CHAOSBED_FAIL_ON_DATA_LOSS", "true").lower() == "true",
            poll_timeout_ms=int(_env("CHAOSBED_POLL_TIMEOUT_MS", "30000")),
            fetch_offset_retries=int(_env("CHAOSBED_FETCH_OFFSET_RETRIES", "40")),
            fetch_offset_retry_interval_ms=int(_env("CHAOSBED_FETCH_OFFSET_RETRY_INTERVAL_MS", "100")),
            sink_retry_seconds=float(_env("CHAOSBED_SINK_RETRY_SECONDS", "3600")),
            reset_checkpoint=_env("CHAOSBED_RESET_CHECKPOINT", "false").lower() == "true",
            failpoint=_env("CHAOSBED_FAILPOINT", ""),
            kafka_properties=properties,
            kafka_options=options,
            spark_conf=_json_object("CHAOSBED_SPARK_CONF", {}),
            ui_port=int(_env("CHAOSBED_SPARK_UI_PORT", "0")),
        )


def _json_object(name: str, fallback: dict[str, str]) -> dict[str, str]:
    """Environment variable `name`: a JSON object of settings (Kafka client settings: names without
    `kafka.`); unset or empty: the fallback."""
    text = _env(name, "")
    if not text:
        return dict(fallback)
    try:
        options = json.loads(text)
    except ValueError:
        options = None
    if not isinstance(options, dict):
        raise SystemExit(f"error: {name} must be a JSON object, not {text!r}")
    return {
        str(k).removeprefix("kafka."): str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in options.items()
    }
