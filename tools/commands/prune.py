"""`tools prune`: remove the sink rows of all but the newest runs (the experiment does it as it starts)."""

from __future__ import annotations

import contextlib
from typing import Annotated

import psycopg2
import typer

from tools.errors import EXIT_BAD_INPUT, ToolError, one_line_errors
from tools.pgconn import connect
from tools.retention import DEFAULT_KEEP_RUNS, check_keep, prune_runs

KeepRunsOption = Annotated[
    int,
    typer.Option(
        "--keep-runs",
        help="Runs whose rows stay in the sink database, newest first; older runs' rows are removed "
        "(their directories and reports stay).",
    ),
]


def _progress(line: str) -> None:
    typer.echo(line, err=True)


@one_line_errors
def prune(
    postgres_dsn: Annotated[str, typer.Option(help="The pipeline's sink DSN.")] = "",
    keep_runs: KeepRunsOption = DEFAULT_KEEP_RUNS,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the runs it would remove.")] = False,
) -> None:
    """Remove the sink rows (events, events_append, the Kafka log audit) of every run but the newest.

    A removed run's `tools validate` is refused (exit 2); its report re-renders from its directory.
    Exit 0 done; 2 bad input or the database unreachable.
    """
    check_keep(keep_runs)
    if not postgres_dsn:
        raise ToolError("no sink DSN: pass --postgres-dsn", EXIT_BAD_INPUT)
    with contextlib.closing(connect(postgres_dsn, what="sink")) as conn:
        try:
            result = prune_runs(conn, keep_runs, progress=_progress, dry_run=dry_run)
        except psycopg2.Error as exc:
            raise ToolError(f"retention query failed: {' '.join(str(exc).split())}") from None
    if dry_run:
        for run_id in result.pruned:
            typer.echo(f"would remove run {run_id}")
        total = len(result.kept) + len(result.pruned)
        typer.echo(f"{len(result.pruned)} of {total} runs are beyond the newest {keep_runs}")
        return
    typer.echo(result.summary(keep_runs))
