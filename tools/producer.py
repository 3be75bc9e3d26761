"""The event producer: sequential ids, acks=all + idempotence, every outcome recorded in the ledger.

Message value (the contract with the Spark job): {"run_id": str, "event_id": int, "produced_at_ms": int},
key None (librdkafka's sticky partitioner keeps consecutive ids together, so ack ranges stay long).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from tools.errors import ToolError
from tools.ledger import LedgerWriter
from tools.metrics.producer import ProducerMetrics
from tools.progress import ProducerStats, Progress

# Ride out outages as acks, not errors, and follow new leaders as soon as the controller names them.
# Why each value: docs/tuning.md ("The producer").
BASE_CONFIG: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    # A request to a silent leader is given up after 1.5 s, when the controller has fenced it; a produce
    # request waits the larger of socket.timeout.ms and request.timeout.ms, so both are short.
    "socket.timeout.ms": 1500,
    "socket.connection.setup.timeout.ms": 3000,
    "request.timeout.ms": 1500,
    "reconnect.backoff.max.ms": 1000,
    # A connection to every broker, so a frozen leader of every partition never leaves none to ask for
    # the new leaders.
    "enable.sparse.connections": False,
    # Fewer, fuller produce requests (less broker CPU); each event waits at most 20 ms longer.
    "linger.ms": 25,
    "message.timeout.ms": 300000,
    # rate x longest outage must fit: 1M messages of ~70 bytes.
    "queue.buffering.max.messages": 1000000,
    "queue.buffering.max.kbytes": 1048576,
    "log.connection.close": False,
    # Switch partitions every 100 ms (librdkafka: 10 ms) so each switch starts a new ack range only
    # as often as the ledger flushes anyway: ~4x fewer ledger lines at 1000 events/s.
    "sticky.partitioning.linger.ms": 100,
}

# Delivery errors that prove the message was not written (a definite broker rejection, or a local
# error before any send, per Jepsen's classification). Everything else is indeterminate, timeouts
# included, and so is _PURGE_QUEUE: librdkafka puts a retried (possibly persisted) message back in
# its queue, and Python cannot see librdkafka's per-message persistence status to tell them apart.
DEFINITE_FAILURES = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError._INVALID_ARG,
    }
)

FLUSH_EVERY_S = 0.1
CHUNK = 2000
# Shortest wait between two sends of a rate-limited run. librdkafka's poll() takes whole milliseconds,
# so a shorter timeout returns at once and the loop spins a core; 5 ms sends ~5 events per turn at 1000/s.
MIN_PACE_S = 0.005


class _Forward(logging.Handler):
    def __init__(self, log: Callable[[str], None]) -> None:
        super().__init__()
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        self._log(f"librdkafka: {record.getMessage()}")


def is_definite_failure(err: KafkaError) -> bool:
    return err.code() in DEFINITE_FAILURES


def parse_config_overrides(items: list[str]) -> dict[str, str]:
    """`-X key=value` pairs for librdkafka (e.g. acks=1 for an unsafe profile)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ToolError(f"invalid --kafka-config {item!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


def reserve_block(rate: float) -> int:
    """Ids reserved per fsync: about half a second of traffic, so a kill strands few ids."""
    if rate <= 0:
        return 20000
    return max(100, min(20000, int(rate / 2)))


@dataclass
class ProduceOptions:
    run_id: str
    topic: str
    bootstrap_servers: str
    rate: float = 1000.0
    count: int | None = None
    duration_s: float | None = None
    flush_timeout_s: float = 20.0
    config_overrides: dict[str, Any] = field(default_factory=dict)

    def kafka_config(self) -> dict[str, Any]:
        return {**BASE_CONFIG, "bootstrap.servers": self.bootstrap_servers, **self.config_overrides}


@dataclass
class ProduceSummary:
    first_id: int
    next_id: int
    acked: int
    failed: int
    indeterminate: int
    elapsed_s: float
    unresolved_at_exit: int


class EventProducer:
    """One producer session: sends ids from the ledger's resume point until stopped."""

    def __init__(
        self,
        opts: ProduceOptions,
        ledger: LedgerWriter,
        progress: Progress | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.opts = opts
        self.ledger = ledger
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        run = json.dumps(opts.run_id).encode()
        prefix = b'{"run_id":' + run + b',"event_id":'
        self._id_at = len(prefix)
        self._value_fmt = prefix.replace(b"%", b"%%") + b'%d,"produced_at_ms":%d}'
        self._fatal: KafkaError | None = None
        self._last_error: str | None = None
        self._last_logged: tuple[str, float] = ("", 0.0)
        self.sent = 0  # this session's sends so far (the metrics read it)
        self.producer = self._new_producer()
        self.metrics = ProducerMetrics(self._counts)
        self._observe_latency: Callable[[float], None] | None = None

    def _counts(self) -> tuple[int, int, int, int, int]:
        ledger = self.ledger
        in_flight = len(self.producer)
        return self.sent, ledger.durable_acked, ledger.durable_failed, ledger.durable_info, in_flight

    def serve_metrics(self, address: str) -> bool:
        """Prometheus metrics at host:port from now on (tools/metrics/producer.py); False if not served."""
        from tools.metrics.endpoints import serve

        if not serve(address, self.metrics.registry, "producer"):
            return False
        self._observe_latency = self.metrics.ack_latency.observe
        return True

    def _new_producer(self) -> Producer:
        config = self.opts.kafka_config()
        config["on_delivery"] = self._on_delivery
        config["error_cb"] = self._on_error
        config["logger"] = self._librdkafka_logger()
        try:
            return Producer(config)
        except KafkaException as exc:
            raise ToolError(f"invalid Kafka producer configuration: {exc.args[0].str()}") from None

    def _librdkafka_logger(self) -> logging.Logger:
        """librdkafka's own log lines, minus the noise: errors already arrive through error_cb
        (rate-limited), so only critical ones are shown, and stderr stays clean for one-line errors."""
        logger = logging.getLogger("chaosbed.librdkafka")
        logger.propagate = False
        logger.setLevel(logging.CRITICAL)
        if not logger.handlers:
            logger.addHandler(_Forward(self.log))
        return logger

    # -- librdkafka callbacks (run inside poll/flush on this thread) --
    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        value = msg.value()
        event_id = int(value[self._id_at : value.index(b",", self._id_at)])
        if err is None:
            self.ledger.ack(event_id, msg.partition(), msg.offset())
            if self._observe_latency is not None:
                latency = msg.latency()
                if latency is not None:
                    self._observe_latency(latency)
        elif is_definite_failure(err):
            self.ledger.fail(event_id, err.name())
        else:
            self.ledger.info(event_id, err.name())

    def _on_error(self, err: KafkaError) -> None:
        self._last_error = err.name()
        if err.fatal():
            self._fatal = err
        # Brokers going away is the point of the exercise: log each kind of error at most every 10 s.
        now = time.monotonic()
        if err.name() != self._last_logged[0] or now - self._last_logged[1] > 10:
            self._last_logged = (err.name(), now)
            self.log(f"kafka: {err.name()}: {err.str()}")

    def check_topic(self, timeout_s: float = 10.0) -> None:
        """Fail fast on a missing topic; an unreachable cluster is only a warning (it may come back)."""
        try:
            md = self.producer.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            self.log(f"warning: Kafka metadata unavailable ({exc.args[0].name()}); producing anyway")
            return
        if self.opts.topic not in md.topics:
            raise ToolError(f"topic {self.opts.topic!r} does not exist on {self.opts.bootstrap_servers}")
        # Known partitions before the first produce(): messages queued while the topic's metadata is
        # unknown are spread one by one over partitions, which fragments the ledger's ack ranges.
        with contextlib.suppress(KafkaException):
            self.producer.list_topics(topic=self.opts.topic, timeout=timeout_s)

    def _stats(self, sent: int, t0: float) -> ProducerStats:
        return ProducerStats(
            sent=sent,
            acked=self.ledger.durable_acked,
            failed=self.ledger.durable_failed,
            indeterminate=self.ledger.durable_info,
            in_flight=len(self.producer),
            elapsed_s=time.monotonic() - t0,
            last_error=self._last_error,
        )

    def _recover_from_fatal(self) -> None:
        """A fatal idempotence error kills the instance: settle its messages, start a new one."""
        assert self._fatal is not None
        self.log(f"kafka: fatal error {self._fatal.name()}: recreating the producer")
        self.producer.purge(in_queue=True, in_flight=True, blocking=False)
        self.producer.flush(5)
        self.ledger.flush()
        self._fatal = None
        self.producer = self._new_producer()

    def run(self, stop: threading.Event, force: threading.Event | None = None) -> ProduceSummary:
        """Produce until stop is set, count is reached or duration has elapsed; then drain and record."""
        force = force or threading.Event()
        opts = self.opts
        first_id = next_id = self.ledger.reserved_until
        end_id = first_id + opts.count if opts.count is not None else None
        block = reserve_block(opts.rate)
        reserved_hi = next_id - 1
        t0 = base_t = time.monotonic()
        base_sent = 0
        sent = 0
        last_flush = t0
        topic = opts.topic
        fmt, produce = self._value_fmt, self.producer.produce
        try:
            while not stop.is_set():
                now = time.monotonic()
                if opts.duration_s is not None and now - t0 >= opts.duration_s:
                    break
                if end_id is not None and next_id >= end_id:
                    break
                if self._fatal is not None:
                    self._recover_from_fatal()
                    produce = self.producer.produce
                if now - last_flush >= FLUSH_EVERY_S:
                    self.ledger.flush()
                    last_flush = now
                    if self.progress:
                        self.progress.update(self._stats(sent, t0))
                if opts.rate > 0:
                    due = int((now - base_t) * opts.rate) - base_sent
                    if due > opts.rate:
                        # Never burst to catch up after a stall: restart the schedule from now.
                        base_t, base_sent, due = now, 0, 1
                    if due <= 0:
                        wait = (base_sent + 1) / opts.rate - (now - base_t)
                        self.producer.poll(min(0.05, max(MIN_PACE_S, wait)))
                        continue
                    due = min(due, CHUNK)
                else:
                    due = CHUNK
                if end_id is not None:
                    due = min(due, end_id - next_id)
                done = 0
                while done < due:
                    if next_id > reserved_hi:
                        want = block if end_id is None else min(block, end_id - next_id)
                        reserved_hi = self.ledger.reserve(want)[1]
                    value = fmt % (next_id, time.time_ns() // 1_000_000)
                    try:
                        produce(topic, value)
                    except BufferError:
                        # Queue full (brokers away): serve callbacks and retry the same id.
                        self.producer.poll(0.1)
                        break
                    except KafkaException as exc:
                        if self._fatal is not None or exc.args[0].fatal():
                            self._fatal = self._fatal or exc.args[0]
                            break
                        raise ToolError(f"Kafka refused event {next_id}: {exc.args[0].str()}") from None
                    next_id += 1
                    done += 1
                sent += done
                self.sent = sent
                base_sent += done
                self.producer.poll(0)
        finally:
            unresolved = self._drain(force, sent, t0)
            self.ledger.close(next_id)
        if self.progress:
            self.progress.close(self._stats(sent, t0))
        return ProduceSummary(
            first_id=first_id,
            next_id=next_id,
            acked=self.ledger.durable_acked,
            failed=self.ledger.durable_failed,
            indeterminate=self.ledger.durable_info,
            elapsed_s=time.monotonic() - t0,
            unresolved_at_exit=unresolved,
        )

    def _drain(self, force: threading.Event, sent: int, t0: float) -> int:
        """Wait (bounded) for outstanding delivery reports; purge the rest so each gets an outcome."""
        deadline = time.monotonic() + self.opts.flush_timeout_s
        while len(self.producer) > 0 and time.monotonic() < deadline and not force.is_set():
            self.producer.flush(0.2)
            self.ledger.flush()
            if self.progress:
                self.progress.update(self._stats(sent, t0))
        if len(self.producer) > 0:
            self.log(f"flush timed out with {len(self.producer)} messages outstanding: purging them")
            # Each purged message gets a delivery report (indeterminate: it may be a retry).
            self.producer.purge(in_queue=True, in_flight=True, blocking=False)
            end = time.monotonic() + 2
            while len(self.producer) > 0 and time.monotonic() < end:
                self.producer.poll(0.1)
        self.ledger.flush()
        return len(self.producer)
