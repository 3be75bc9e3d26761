"""`tools report`: write RESILIENCE_REPORT.md and its plots into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import psycopg2
import typer
from psycopg2.extensions import connection

from tools.commands.options import (
    PostgresDsnOption,
    RunArgument,
    RunDirOption,
    RunIdOption,
    RunsRootOption,
    SinkTableOption,
)
from tools.errors import EXIT_BAD_INPUT, ToolError, one_line_errors
from tools.pgconn import connect
from tools.recovery import RecoveryParams
from tools.run.layout import SINK_DATA_FILE, find_run
from tools.run.meta import load_run

DEFAULTS = RecoveryParams()
FORMATS = ("md", "html")


@one_line_errors
def report(
    run: RunArgument = None,
    run_dir: RunDirOption = None,
    run_id: RunIdOption = None,
    runs_root: RunsRootOption = None,
    postgres_dsn: PostgresDsnOption = None,
    sink_table: SinkTableOption = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Do not query PostgreSQL: the sink's figures come from the run's sink_data.json; "
            "without it sink sections read 'not measured'.",
        ),
    ] = False,
    hold: Annotated[
        int, typer.Option(min=1, help="Recovery: seconds the pipeline must stay healthy.")
    ] = DEFAULTS.hold_s,
    baseline: Annotated[
        int, typer.Option(min=1, help="Recovery: seconds before the first fault used as the baseline.")
    ] = DEFAULTS.baseline_s,
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            help="md: RESILIENCE_REPORT.md and its PNG plots; html: also RESILIENCE_REPORT.html, one "
            "self-contained page with the plots inline.",
        ),
    ] = "md",
) -> None:
    """Render the run's resilience report (Markdown + PNG plots, optionally HTML) from its own data only."""
    if format_ not in FORMATS:
        raise ToolError(f"invalid --format {format_!r}: use {' or '.join(FORMATS)}", EXIT_BAD_INPUT)
    # Imported here: matplotlib costs more than a second, which every other command would pay.
    from tools.report.data import gather
    from tools.report.render import write_report

    path = find_run(run, run_dir, run_id, runs_root)
    info = load_run(path)
    params = RecoveryParams(hold_s=hold, baseline_s=baseline)
    conn = None if offline else _connect(postgres_dsn or info.get("postgres_dsn"), path)
    try:
        data = gather(path, conn, params, sink_table)
    except psycopg2.Error as exc:
        raise ToolError(f"report query failed: {' '.join(str(exc).split())}") from None
    finally:
        if conn is not None:
            conn.close()
    out = write_report(data)
    typer.echo(str(out))
    if format_ == "html":
        from tools.report.html import write_html

        typer.echo(str(write_html(out)))


def _connect(dsn: str | None, run_dir: Path) -> connection | None:
    """The sink; a run that saved its figures renders from them when the sink does not answer."""
    try:
        return connect(dsn, what="sink")
    except ToolError as exc:
        if not (run_dir / SINK_DATA_FILE).is_file():
            raise
        typer.echo(f"warning: {exc}: rendering from the run's {SINK_DATA_FILE}", err=True)
        return None
