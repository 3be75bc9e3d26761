"""`tools validate`: check every attempted id of a run against the sink table."""

from __future__ import annotations

import json
from typing import Annotated, Any

import psycopg2
import typer
from confluent_kafka import KafkaException
from rich.console import Console
from rich.table import Table

from tools.audit import audit_log
from tools.commands.options import (
    PostgresDsnOption,
    RunArgument,
    RunDirOption,
    RunIdOption,
    RunsRootOption,
    SinkTableOption,
)
from tools.errors import EXIT_BAD_INPUT, EXIT_FINDING, ToolError, one_line_errors
from tools.ledger import LedgerState, load_ledger
from tools.pgconn import connect
from tools.progress import Steps
from tools.retention import pruned_at
from tools.run.clock import ms_from_iso
from tools.run.layout import VALIDATION_FILE, find_run
from tools.run.meta import check_sink_table, load_run, write_json_atomic
from tools.validation import ValidationResult, missing_layer_tables, validate_run, wait_until_settled


def _table(result: ValidationResult) -> Table:
    table = Table(title=f"run {result.run_id}: ledger vs {result.sink_table}", title_justify="left")
    table.add_column("class")
    table.add_column("ids", justify="right")
    table.add_column("verdict")
    bad = "[bold red]ERROR[/]"

    def row(name: str, value: int, must_be_zero: bool = False) -> None:
        verdict = (bad if value else "[green]ok[/]") if must_be_zero else ""
        table.add_row(name, f"{value:,}", verdict)

    row("attempted", result.attempted_count)
    row("acknowledged", result.acked_count)
    row("failed (definite)", result.failed_count)
    row("indeterminate", result.indeterminate_count)
    row("sink rows", result.rows_count)
    row("missing (acked, absent)", result.missing_count, True)
    row("extra (never attempted)", result.extra_count, True)
    row("duplicate (delivered > 1)", result.duplicate_count, True)
    row("failed yet present", result.failed_present, True)
    row("indeterminate present", result.indeterminate_present)
    row("indeterminate absent", result.indeterminate_absent)
    row("offset mismatch (info)", result.offset_mismatch_count)
    row("batch replays absorbed", result.replays_absorbed)
    row("upsert-absorbed rows", result.upsert_absorbed_rows)
    return table


# The audit reads the log from the run's start minus this (clock steps between producer and broker hosts).
AUDIT_MARGIN_MS = 300_000


def _audit(conn: Any, info: dict[str, Any], bootstrap: str | None, wanted: bool) -> dict[str, Any]:
    """Audit the run's Kafka log into PostgreSQL; a failure leaves the Kafka layer unmeasured (a
    warning, not bad input: the sink checks stand without it)."""
    servers = bootstrap or info.get("bootstrap_servers")
    if not wanted:
        return {"error": "not audited (--no-audit, or the schema lacks the audit tables)"}
    if not servers or not info.get("topic"):
        return {"error": "not audited: run.json has no bootstrap_servers/topic"}
    try:
        since = ms_from_iso(info["started_at"]) - AUDIT_MARGIN_MS if info.get("started_at") else None
        return audit_log(conn, info["run_id"], servers, info["topic"], since_ms=since).to_json()
    except (ToolError, KafkaException) as exc:
        why = str(exc) if isinstance(exc, ToolError) else exc.args[0].str()
        typer.echo(f"warning: {why}; the Kafka layer is not measured", err=True)
        return {"error": why}


def _layer_table(result: ValidationResult) -> Table:
    table = Table(title="anomalies by layer (docs/checker.md)", title_justify="left")
    for name in ("layer", "class", "count", "verdict", "first witness"):
        table.add_column(name, justify="right" if name == "count" else "left")
    for name, c in result.layers.get("classes", {}).items():
        verdict = "info" if c["allowed"] else ("[bold red]ERROR[/]" if c["count"] else "[green]ok[/]")
        first = json.dumps(c["witnesses"][0], default=str) if c["witnesses"] else ""
        table.add_row(c["layer"], name, f"{c['count']:,}", verdict, first)
    return table


def _check(
    conn: Any,
    steps: Steps,
    info: dict[str, Any],
    state: LedgerState,
    table: str,
    settle: float,
    settle_timeout: float,
    bootstrap_servers: str | None,
    audit: bool,
) -> ValidationResult:
    """Settle, audit the Kafka log, classify every id: each a step of the progress line."""
    if settle > 0:
        steps.step("waiting for the sink's row count to hold")
        if not wait_until_settled(conn, info["run_id"], table, settle, settle_timeout, steps.detail):
            typer.echo(
                f"warning: sink rows still changing after {settle_timeout:.0f}s; validating anyway", err=True
            )
    missing = missing_layer_tables(conn)
    if audit and not missing:
        steps.step("reading the run's Kafka log into PostgreSQL")
    audit_info = _audit(conn, info, bootstrap_servers, audit and not missing)
    steps.step(f"checking {state.counts()['attempted']:,} attempted ids against {table}")
    result = validate_run(
        conn, info["run_id"], state, table, layered=not missing, audited="error" not in audit_info
    )
    result.kafka_audit = audit_info
    if missing:
        result.notes.append(
            f"layered check not run: the database lacks {', '.join(missing)} (apply the schema: site.yml)"
        )
    return result


@one_line_errors
def validate(
    run: RunArgument = None,
    run_dir: RunDirOption = None,
    run_id: RunIdOption = None,
    runs_root: RunsRootOption = None,
    postgres_dsn: PostgresDsnOption = None,
    sink_table: SinkTableOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    settle: Annotated[
        float,
        typer.Option(min=0, help="First wait until the run's row count is unchanged this many seconds."),
    ] = 0.0,
    settle_timeout: Annotated[
        float, typer.Option(min=0, help="Give up waiting to settle after this.")
    ] = 600.0,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(help="Kafka as this host reaches it, for the log audit (default: from run.json)."),
    ] = None,
    audit: Annotated[
        bool, typer.Option("--audit/--no-audit", help="Read the run's Kafka log (the Kafka layer).")
    ] = True,
) -> None:
    """Check every attempted id of a run against the sink table.

    Exit 0 if no acked id is missing, no id is extra or duplicated and no failed send is present;
    1 if any is; 2 on bad input (no such run, corrupt ledger, database unreachable). Writes
    validation.json into the run directory.
    """
    path = find_run(run, run_dir, run_id, runs_root)
    info = load_run(path)
    table = check_sink_table(sink_table or info["sink_table"])
    with Steps("validate") as steps:
        steps.step("reading the ledger")
        state = load_ledger(path)
        if state.run_id != info["run_id"]:
            raise ToolError(
                f"ledger of run {state.run_id!r} found in the directory of run {info['run_id']!r}"
            )
        conn = connect(postgres_dsn or info.get("postgres_dsn"), what="sink")
        try:
            pruned = pruned_at(conn, info["run_id"])
            if pruned is not None:
                raise ToolError(
                    f"run {info['run_id']}'s rows were removed from the sink at {pruned:%Y-%m-%d %H:%M:%S} "
                    f"(retention keeps the newest runs); its last validation.json and report stay in {path}",
                    EXIT_BAD_INPUT,
                )
            result = _check(conn, steps, info, state, table, settle, settle_timeout, bootstrap_servers, audit)
        except psycopg2.Error as exc:
            raise ToolError(f"validation query failed: {' '.join(str(exc).split())}") from None
        finally:
            conn.close()
    data = result.to_json()

    write_json_atomic(path / VALIDATION_FILE, data)
    if json_output:
        typer.echo(json.dumps(data, indent=2))
    else:
        console = Console()
        console.print(_table(result))
        if result.layers:
            console.print(_layer_table(result))
            for note in result.layers.get("notes", []):
                console.print(f"note: {note}", markup=False)
        for name, ids in result.samples.items():
            if ids:
                console.print(f"sample {name} ids: {', '.join(map(str, ids))}", markup=False)
        verdict = (
            "[bold green]VALID[/]" if result.valid else "[bold red]INVALID[/]: " + "; ".join(result.problems)
        )
        console.print(verdict)
    if not result.valid:
        raise typer.Exit(EXIT_FINDING)
