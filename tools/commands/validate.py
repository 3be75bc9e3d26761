"""`tools validate`: check every attempted id of a run against the sink table."""

from __future__ import annotations

import json
from typing import Annotated

import psycopg2
import typer
from rich.console import Console
from rich.table import Table

from tools.commands.options import (
    PostgresDsnOption,
    RunArgument,
    RunDirOption,
    RunIdOption,
    RunsRootOption,
    SinkTableOption,
)
from tools.errors import EXIT_FINDING, ToolError, one_line_errors
from tools.ledger import load_ledger
from tools.pgconn import connect
from tools.run.layout import VALIDATION_FILE, find_run
from tools.run.meta import check_sink_table, load_run, write_json_atomic
from tools.validation import ValidationResult, validate_run, wait_until_settled


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
) -> None:
    """Check every attempted id of a run against the sink table.

    Exit 0 if no acked id is missing, no id is extra or duplicated and no failed send is present;
    1 if any is; 2 on bad input (no such run, corrupt ledger, database unreachable). Writes
    validation.json into the run directory.
    """
    path = find_run(run, run_dir, run_id, runs_root)
    info = load_run(path)
    table = check_sink_table(sink_table or info["sink_table"])
    state = load_ledger(path)
    if state.run_id != info["run_id"]:
        raise ToolError(f"ledger of run {state.run_id!r} found in the directory of run {info['run_id']!r}")
    conn = connect(postgres_dsn or info.get("postgres_dsn"), what="sink")
    try:
        if settle > 0 and not wait_until_settled(conn, info["run_id"], table, settle, settle_timeout):
            typer.echo(
                f"warning: sink rows still changing after {settle_timeout:.0f}s; validating anyway", err=True
            )
        result = validate_run(conn, info["run_id"], state, table)
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
        for name, ids in result.samples.items():
            if ids:
                console.print(f"sample {name} ids: {', '.join(map(str, ids))}", markup=False)
        verdict = (
            "[bold green]VALID[/]" if result.valid else "[bold red]INVALID[/]: " + "; ".join(result.problems)
        )
        console.print(verdict)
    if not result.valid:
        raise typer.Exit(EXIT_FINDING)
