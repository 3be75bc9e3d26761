#!/usr/bin/env python3
"""Molecule's verify probe: produce a few events in the pipeline's format, from the control host."""

from __future__ import annotations

import argparse
import json
import sys
import time

from confluent_kafka import Producer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "enable.idempotence": True})
    failures: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for event_id in range(1, args.count + 1):
        value = {"run_id": args.run_id, "event_id": event_id, "produced_at_ms": int(time.time() * 1000)}
        producer.produce(args.topic, json.dumps(value).encode(), key=str(event_id).encode(), on_delivery=delivered)
    left = producer.flush(30)
    if left or failures:
        print(f"{left} undelivered, failures: {failures}", file=sys.stderr)
        return 1
    print(json.dumps({"produced": args.count, "run_id": args.run_id}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
