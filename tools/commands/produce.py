"""`tools produce`: send sequential events to Kafka and record every outcome in the run's ledger."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from tools.commands.options import RunDirOption, RunsRootOption
from tools.errors import ToolError, one_line_errors
from tools.ledger import LedgerWriter
from tools.producer import EventProducer, ProduceOptions, parse_config_overrides
from tools.progress import make_progress
from tools.run.clock import now_iso
from tools.run.layout import new_run_dir, run_id_of
from tools.run.meta import create_run, load_run, update_run


def parse_meta(meta: str | None) -> dict[str, Any]:
    """--meta: inline JSON object, or @path to a JSON file (versions/topology/settings for run.json)."""
    if not meta:
        return {}
    try:
        text = Path(meta[1:]).read_text() if meta.startswith("@") else meta
        data = json.loads(text)
    except OSError as exc:
        raise ToolError(f"cannot read --meta file {meta[1:]}: {exc.strerror}") from None
    except ValueError as exc:
        raise ToolError(f"invalid --meta JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ToolError("invalid --meta JSON: expected an object")
    return data


@one_line_errors
def produce(
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id",
            help="A run under the runs root; a new one (<UTC time>-produce) if omitted. Reuse to resume.",
        ),
    ] = None,
    run_dir: RunDirOption = None,
    runs_root: RunsRootOption = None,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers (default: from run.json).")
    ] = None,
    topic: Annotated[str | None, typer.Option(help="Topic (default: from run.json, else 'events').")] = None,
    postgres_dsn: Annotated[
        str | None, typer.Option(help="Sink DSN, recorded in run.json for validate/report.")
    ] = None,
    rate: Annotated[float, typer.Option(min=0, help="Events per second; 0 = as fast as possible.")] = 1000.0,
    count: Annotated[int | None, typer.Option(min=0, help="Stop after this many events.")] = None,
    duration: Annotated[float | None, typer.Option(min=0, help="Stop after this many seconds.")] = None,
    flush_timeout: Annotated[
        float,
        typer.Option(min=0, help="On stop, seconds to wait for acks; then purge (indeterminate)."),
    ] = 20.0,
    kafka_config: Annotated[
        list[str] | None,
        typer.Option("--kafka-config", "-X", help="librdkafka setting key=value, overrides the defaults."),
    ] = None,
    profile: Annotated[str | None, typer.Option(help="Pipeline profile recorded in run.json.")] = None,
    sink_table: Annotated[
        str | None, typer.Option(help="Sink table to validate: events or events_append.")
    ] = None,
    meta: Annotated[
        str | None, typer.Option(help="JSON object (or @file) merged into run.json: versions, topology...")
    ] = None,
    metrics_listen: Annotated[
        str,
        typer.Option(
            help="Serve Prometheus metrics (sent, acked, failed, in flight, ack latency) at HOST:PORT."
        ),
    ] = "",
    init_only: Annotated[
        bool, typer.Option("--init-only", help="Create/update run.json and exit without producing.")
    ] = False,
) -> None:
    """Produce events {run_id, event_id, produced_at_ms} with acks=all and idempotence.

    Every id is reserved in the ledger before it is sent; acks, definite failures and unknown outcomes
    are recorded from delivery reports. SIGTERM/SIGINT: stop, wait for acks (bounded), record, exit 0.
    """
    if count is not None and duration is not None:
        raise ToolError("give --count or --duration, not both")
    target = new_run_dir(run_dir, run_id, runs_root, "produce")
    overrides = parse_config_overrides(kafka_config or [])
    extra = parse_meta(meta)
    path = create_run(
        target,
        bootstrap_servers=bootstrap_servers,
        topic=topic,
        postgres_dsn=postgres_dsn,
        profile=profile,
        sink_table=sink_table,
        extra=extra,
    )
    run = load_run(path)
    run_id = run_id_of(path)
    if init_only:
        typer.echo(str(path))
        return
    if not run.get("bootstrap_servers"):
        raise ToolError("no Kafka bootstrap servers: pass --bootstrap-servers (it is then kept in run.json)")
    opts = ProduceOptions(
        run_id=run_id,
        topic=run["topic"],
        bootstrap_servers=run["bootstrap_servers"],
        rate=rate,
        count=count,
        duration_s=duration,
        flush_timeout_s=flush_timeout,
        config_overrides=overrides,
    )
    ledger = LedgerWriter(path, run_id)
    try:
        producer = EventProducer(opts, ledger, make_progress())
        producer.check_topic()
        if metrics_listen:
            producer.serve_metrics(metrics_listen)
    except BaseException:
        ledger.close(ledger.reserved_until)
        raise
    update_run(
        path,
        settings={
            "producer": {
                "rate": rate,
                "count": count,
                "duration_s": duration,
                "kafka_config": {k: v for k, v in opts.kafka_config().items() if "password" not in k},
            }
        },
    )
    stop, force = threading.Event(), threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        if stop.is_set():
            force.set()  # second signal: stop waiting for acks
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        summary = producer.run(stop, force)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        update_run(path, ended_at=now_iso())
    rate_s = (summary.next_id - summary.first_id) / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    typer.echo(
        f"run {run_id}: sent ids {summary.first_id}..{summary.next_id - 1} "
        f"({summary.next_id - summary.first_id}) in {summary.elapsed_s:.1f}s ({rate_s:.0f}/s); "
        f"ledger totals: acked {summary.acked}, failed {summary.failed}, "
        f"indeterminate reported {summary.indeterminate}; ledger {ledger.path}"
    )
