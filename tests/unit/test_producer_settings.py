"""Producer configuration and delivery-error classification (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from tools.errors import ToolError
from tools.producer import (
    BASE_CONFIG,
    ProduceOptions,
    is_definite_failure,
    parse_config_overrides,
    reserve_block,
)


def test_defaults_ride_out_outages_and_follow_new_leaders() -> None:
    config = ProduceOptions(run_id="r", topic="events", bootstrap_servers="127.0.0.1:1").kafka_config()
    assert config["acks"] == "all" and config["enable.idempotence"] is True
    # 1.5 s: a killed or paused leader's partitions move after its 1.5 s session timeout, and the
    # producer should follow then (docs/tuning.md); a produce request waits the larger of the two, so
    # both must be short. Still far above a normal ack.
    assert config["socket.timeout.ms"] == 1500 and config["request.timeout.ms"] == 1500
    assert config["socket.connection.setup.timeout.ms"] == 3000
    assert config["reconnect.backoff.max.ms"] == 1000
    assert config["enable.sparse.connections"] is False
    assert config["linger.ms"] == 25 and config["message.timeout.ms"] == 300000
    assert config["queue.buffering.max.messages"] >= 600_000
    assert config["sticky.partitioning.linger.ms"] == 100


def test_overrides_win_and_are_validated() -> None:
    overrides = parse_config_overrides(["acks=1", " message.timeout.ms = 5000 "])
    config = ProduceOptions("r", "t", "b", config_overrides=overrides).kafka_config()
    assert config["acks"] == "1" and config["message.timeout.ms"] == "5000"
    with pytest.raises(ToolError, match="expected key=value"):
        parse_config_overrides(["acks"])


@pytest.mark.parametrize(
    ("code", "definite"),
    [
        (KafkaError._PURGE_QUEUE, False),  # may be a queued retry of a possibly persisted send
        (KafkaError.MSG_SIZE_TOO_LARGE, True),
        (KafkaError._UNKNOWN_TOPIC, True),
        (KafkaError._MSG_TIMED_OUT, False),  # may have been written
        (KafkaError._PURGE_INFLIGHT, False),
        (KafkaError.NOT_LEADER_FOR_PARTITION, False),  # KAFKA-13574: not definite
        (KafkaError.REQUEST_TIMED_OUT, False),
        (KafkaError._FATAL, False),
    ],
)
def test_only_proven_non_writes_are_failures(code: int, definite: bool) -> None:
    assert is_definite_failure(KafkaError(code)) is definite


def test_reservation_block_is_about_half_a_second_of_traffic() -> None:
    assert reserve_block(0) == 20000
    assert reserve_block(1000) == 500
    assert reserve_block(10) == 100
    assert reserve_block(10_000_000) == 20000


def test_docs_list_every_producer_setting_with_the_code_value() -> None:
    # docs/tuning.md's producer table is the documentation of BASE_CONFIG: it must not drift from it.
    text = (Path(__file__).resolve().parents[2] / "docs" / "tuning.md").read_text()
    section = text.split("## The producer", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, str] = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = [n.strip().strip("`") for n in cells[0].split(" / ")]
        values = [v.strip().strip("`") for v in cells[1].split(" / ")]
        first = names[0]
        for name, value in zip(names, values, strict=True):
            # `.kbytes` after `queue.buffering.max.messages`: the first name with its last part replaced.
            full = first.rsplit(".", 1)[0] + name if name.startswith(".") else name
            documented[full] = value
    code = {k: str(v).lower() for k, v in BASE_CONFIG.items()}
    assert documented == code
