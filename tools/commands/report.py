"""`tools report`: write RESILIENCE_REPORT.md and its plots into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import psycopg2
import typer

from tools import rundir
from tools.errors import ToolError, one_line_errors
from tools.pgconn import connect
from tools.recovery import RecoveryParams


@one_line_errors
def report(
    run: Annotated[
        Path | None, typer.Argument(help="Run directory, or a run id under --run-dir.", show_default=False)
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run-dir",
            "--runs-dir",
            help="Root of run directories (default runs/).",
            envvar="CHAOSBED_RUN_DIR",
        ),
    ] = None,
    run_id: Annotated[str | None, typer.Option(help="Run id under --run-dir.")] = None,
    postgres_dsn: Annotated[str | None, typer.Option(help="Sink DSN (default: from run.json).")] = None,
    sink_table: Annotated[
        str | None, typer.Option(help="events or events_append (default: from run.json).")
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Do not query PostgreSQL; sink sections read 'not measured'.")
    ] = False,
    hold: Annotated[int, typer.Option(min=1, help="Recovery: seconds the pipeline must stay healthy.")] = 10,
    baseline: Annotated[
        int, typer.Option(min=1, help="Recovery: seconds before the first fault used as the baseline.")
    ] = 60,
) -> None:
    """Render the run's resilience report (Markdown + PNG plots) from its own data only."""
    # Imported here: matplotlib costs more than a second, which every other command would pay.
    from tools.report.data import gather
    from tools.report.render import write_report

    path = rundir.resolve(run, run_dir, run_id)
    info = rundir.load_run(path)
    params = RecoveryParams(hold_s=hold, baseline_s=baseline)
    conn = None if offline else connect(postgres_dsn or info.get("postgres_dsn"), what="sink")
    try:
        data = gather(path, conn, params, sink_table)
    except psycopg2.Error as exc:
        raise ToolError(f"report query failed: {' '.join(str(exc).split())}") from None
    finally:
        if conn is not None:
            conn.close()
    out = write_report(data)
    typer.echo(str(out))
