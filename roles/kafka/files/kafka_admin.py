#!/usr/bin/env python3
"""Kafka admin probes for the kafka role, run on the control host with confluent-kafka.

`health`: exit 0 when the expected brokers are registered and every partition of the
topics has enough in-sync replicas; otherwise print what is wrong and exit 1.
`ensure-topic`: create the topic if missing; print {"changed": bool} as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000})


def health(args: argparse.Namespace) -> int:
    try:
        meta = admin(args.bootstrap).list_topics(timeout=args.timeout)
    except KafkaException as exc:
        print(f"cluster unreachable at {args.bootstrap}: {exc}")
        return 1
    problems: list[str] = []
    if len(meta.brokers) < args.brokers:
        ids = sorted(meta.brokers)
        problems.append(f"{len(meta.brokers)} of {args.brokers} brokers registered (ids {ids})")
    for name in args.topic:
        topic = meta.topics.get(name)
        if topic is None or topic.error is not None:
            problems.append(f"topic {name} missing ({topic.error if topic else 'not in metadata'})")
            continue
        for pid, part in sorted(topic.partitions.items()):
            if part.leader < 0:
                problems.append(f"{name}[{pid}] has no leader")
            elif len(part.isrs) < args.isr:
                problems.append(f"{name}[{pid}] ISR {sorted(part.isrs)} below {args.isr}")
    if problems:
        print("; ".join(problems))
        return 1
    print(f"{len(meta.brokers)} brokers; topics {', '.join(args.topic)} fully in sync")
    return 0


def ensure_topic(args: argparse.Namespace) -> int:
    client = admin(args.bootstrap)
    meta = client.list_topics(timeout=args.timeout)
    if args.name in meta.topics and meta.topics[args.name].error is None:
        print(json.dumps({"changed": False, "partitions": len(meta.topics[args.name].partitions)}))
        return 0
    configs = dict(item.split("=", 1) for item in args.config)
    topic = NewTopic(args.name, num_partitions=args.partitions, replication_factor=args.replication_factor,
                     config=configs)
    future = client.create_topics([topic], operation_timeout=args.timeout)[args.name]
    try:
        future.result()
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            print(f"cannot create topic {args.name}: {exc}", file=sys.stderr)
            return 1
        print(json.dumps({"changed": False}))
        return 0
    print(json.dumps({"changed": True}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--timeout", type=float, default=10.0)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("health")
    check.add_argument("--brokers", type=int, required=True)
    check.add_argument("--topic", action="append", default=[])
    check.add_argument("--isr", type=int, default=1)
    create = sub.add_parser("ensure-topic")
    create.add_argument("--name", required=True)
    create.add_argument("--partitions", type=int, required=True)
    create.add_argument("--replication-factor", type=int, required=True)
    create.add_argument("--config", action="append", default=[])
    args = parser.parse_args()
    return health(args) if args.command == "health" else ensure_topic(args)


if __name__ == "__main__":
    sys.exit(main())
