"""The Spark job's settings from the environment: the Kafka client pass-through and its bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spark_job.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_kafka_options_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CHAOSBED_KAFKA_OPTIONS",
        '{"metadata.max.age.ms": 1000, "kafka.client.rack": "r1", "check.crcs": true}',
    )
    options = Settings.from_env().kafka_options
    # Values become the strings Spark's DataStreamReader.option takes; a `kafka.` prefix is accepted once.
    assert options == {"metadata.max.age.ms": "1000", "client.rack": "r1", "check.crcs": "true"}


def test_kafka_options_default_to_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAOSBED_KAFKA_OPTIONS", raising=False)
    assert Settings.from_env().kafka_options == {}


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '"metadata.max.age.ms=1000"'])
def test_kafka_options_must_be_a_json_object(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("CHAOSBED_KAFKA_OPTIONS", text)
    with pytest.raises(SystemExit, match="CHAOSBED_KAFKA_OPTIONS must be a JSON object"):
        Settings.from_env()


def test_kafka_timeouts_without_env_match_the_role_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    # A job started by hand (no role-written environment) must time out like a provisioned one.
    monkeypatch.delenv("CHAOSBED_KAFKA_REQUEST_TIMEOUT_MS", raising=False)
    monkeypatch.delenv("CHAOSBED_KAFKA_API_TIMEOUT_MS", raising=False)
    defaults = yaml.safe_load((REPO / "roles" / "spark" / "defaults" / "main.yml").read_text())
    settings = Settings.from_env()
    assert settings.request_timeout_ms == defaults["spark_kafka_request_timeout_ms"]
    assert settings.api_timeout_ms == defaults["spark_kafka_api_timeout_ms"]
