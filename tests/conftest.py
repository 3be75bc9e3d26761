"""Shared fixtures: a real PostgreSQL server and a real Kafka broker (tests/fixtures/), started on demand."""

from __future__ import annotations

import sys
from pathlib import Path

# The `fixtures` package lives next to this file; tests and benchmarks import it by that name.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures.kafka import kafka_broker, kafka_topic  # noqa: F401
from fixtures.postgres import fresh_pg_dsn, pg_server, postgres_dsn  # noqa: F401
from fixtures.spark import spark_session  # noqa: F401
