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


def test_kafka_settings_without_env_match_the_role_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    # A job started by hand (no role-written environment) must time out like a provisioned one.
    for name in ("KAFKA_PROPERTIES", "FETCH_OFFSET_RETRIES", "FETCH_OFFSET_RETRY_INTERVAL_MS"):
        monkeypatch.delenv(f"CHAOSBED_{name}", raising=False)
    defaults = yaml.safe_load((REPO / "roles" / "spark" / "defaults" / "main.yml").read_text())
    settings = Settings.from_env()
    assert settings.kafka_properties == {k: str(v) for k, v in defaults["spark_kafka_properties"].items()}
    assert settings.kafka_properties["request.timeout.ms"] == "1000"
    assert settings.kafka_properties["default.api.timeout.ms"] == "2000"
    assert settings.fetch_offset_retries == defaults["spark_fetch_offset_retries"]
    assert settings.fetch_offset_retry_interval_ms == defaults["spark_fetch_offset_retry_interval_ms"]


def test_kafka_properties_from_env_and_options_over_them(monkeypatch: pytest.MonkeyPatch) -> None:
    properties = '{"request.timeout.ms": 800, "default.api.timeout.ms": 900}'
    monkeypatch.setenv("CHAOSBED_KAFKA_PROPERTIES", properties)
    monkeypatch.setenv("CHAOSBED_KAFKA_OPTIONS", '{"default.api.timeout.ms": 1600}')
    settings = Settings.from_env()
    assert settings.kafka_properties == {"request.timeout.ms": "800", "default.api.timeout.ms": "900"}
    assert settings.kafka_client() == {"request.timeout.ms": "800", "default.api.timeout.ms": "1600"}


def test_kafka_properties_must_be_a_json_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOSBED_KAFKA_PROPERTIES", "[1]")
    with pytest.raises(SystemExit, match="CHAOSBED_KAFKA_PROPERTIES must be a JSON object"):
        Settings.from_env()


def test_api_timeout_below_request_timeout_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # The Kafka clients refuse it, and the query would never start.
    monkeypatch.delenv("CHAOSBED_KAFKA_PROPERTIES", raising=False)
    monkeypatch.setenv("CHAOSBED_KAFKA_OPTIONS", '{"default.api.timeout.ms": 500}')
    with pytest.raises(SystemExit, match=r"default\.api\.timeout\.ms must be >= request\.timeout\.ms"):
        Settings.from_env()
