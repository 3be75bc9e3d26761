"""A bare confluent-kafka produce loop: the Kafka ceiling chaosbed's producer is compared with.

    .venv/bin/python benchmarks/bare_produce.py --count 300000 --bootstrap-servers HOST:PORT --topic T

acks=all and idempotence with the producer's own client settings (tools.producer.BASE_CONFIG) and
events of the same shape and size, but no ledger and no per-event bookkeeping beyond counting acks:
what is left is librdkafka and the brokers. Prints `bare_events_per_second=<n>`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from confluent_kafka import KafkaError, Message, Producer  # noqa: E402

from tools.producer import BASE_CONFIG  # noqa: E402


class _Counter:
    def __init__(self) -> None:
        self.acked = 0
        self.failed = 0
        self.last_ack = 0.0

    def on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self.acked += 1
            self.last_ack = time.monotonic()
        else:
            self.failed += 1


def bare_rate(bootstrap: str, topic: str, count: int) -> dict[str, float | int]:
    """Produce `count` events as fast as librdkafka takes them; acked events per second from the first
    send to the last acknowledgement."""
    counter = _Counter()
    producer = Producer({**BASE_CONFIG, "bootstrap.servers": bootstrap, "on_delivery": counter.on_delivery})
    value_fmt = b'{"run_id":"bare-loop","event_id":%d,"produced_at_ms":%d}'
    # Connected and the topic's leaders known before the clock starts, as chaosbed's producer checks its
    # topic before its first reservation.
    producer.list_topics(topic, timeout=30)
    t0 = time.monotonic()
    for event_id in range(count):
        value = value_fmt % (event_id, int(time.time() * 1000))
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:
                producer.poll(0.05)
        if event_id % 1000 == 0:  # serve delivery callbacks in bulk, as a tight client loop would
            producer.poll(0)
    left = producer.flush(120)
    span = counter.last_ack - t0
    return {
        "events_per_s": round(counter.acked / span) if span > 0 else 0,
        "acked": counter.acked,
        "failed": counter.failed,
        "unflushed": left,
        "seconds": round(span, 2),
        "message_bytes": len(value_fmt % (count, int(time.time() * 1000))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=300_000)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    args = parser.parse_args()
    res = bare_rate(args.bootstrap_servers, args.topic, args.count)
    print(f"acked {res['acked']:,} of {args.count:,} in {res['seconds']} s", file=sys.stderr)
    print(f"bare_events_per_second={res['events_per_s']}")


if __name__ == "__main__":
    main()
