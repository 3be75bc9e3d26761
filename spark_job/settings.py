"""The job's settings, read from the environment (the spark role sets them)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field


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
    fetch_max_wait_ms: int
    request_timeout_ms: int
    api_timeout_ms: int
    sink_retry_seconds: float
    # unsafe-offsets profile: forget the checkpoint at every start.
    reset_checkpoint: bool
    # Test failpoint: "crash-after-commit[:<run id>]" kills the driver once, right after the
    # sink committed a batch (of that run) and before Spark's commit log records it.
    failpoint: str
    # Any other Kafka client setting, e.g. {"metadata.max.age.ms": "1000"}: set as `kafka.<name>` on the
    # source, after (and over) the ones above.
    kafka_options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        mode = _env("CHAOSBED_SINK_MODE", "upsert")
        if mode not in ("upsert", "append"):
            raise SystemExit(f"error: CHAOSBED_SINK_MODE must be upsert or append, not {mode!r}")
        request_ms = int(_env("CHAOSBED_KAFKA_REQUEST_TIMEOUT_MS", "1000"))
        api_ms = int(_env("CHAOSBED_KAFKA_API_TIMEOUT_MS", "2000"))
        if api_ms < request_ms:  # the Kafka clients refuse it, and the query would never start
            raise SystemExit("error: CHAOSBED_KAFKA_API_TIMEOUT_MS must be >= ..._REQUEST_TIMEOUT_MS")
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
            fetch_max_wait_ms=int(_env("CHAOSBED_FETCH_MAX_WAIT_MS", "10")),
            request_timeout_ms=request_ms,
            api_timeout_ms=api_ms,
            sink_retry_seconds=float(_env("CHAOSBED_SINK_RETRY_SECONDS", "3600")),
            reset_checkpoint=_env("CHAOSBED_RESET_CHECKPOINT", "false").lower() == "true",
            failpoint=_env("CHAOSBED_FAILPOINT", ""),
            kafka_options=_kafka_options(_env("CHAOSBED_KAFKA_OPTIONS", "{}")),
        )


def _kafka_options(text: str) -> dict[str, str]:
    """CHAOSBED_KAFKA_OPTIONS: a JSON object of Kafka client settings (names without `kafka.`)."""
    try:
        options = json.loads(text)
    except ValueError:
        options = None
    if not isinstance(options, dict):
        raise SystemExit(f"error: CHAOSBED_KAFKA_OPTIONS must be a JSON object, not {text!r}")
    return {
        str(k).removeprefix("kafka."): str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in options.items()
    }
