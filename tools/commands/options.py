"""Options that mean the same in every command (the run's location, the sink)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tools.run.layout import RUNS_ROOT_ENV

RunArgument = Annotated[
    Path | None,
    typer.Argument(help="A run directory, or a run id under the runs root.", show_default=False),
]
RunsRootOption = Annotated[
    Path | None,
    typer.Option(
        "--runs-root",
        help="Root of all runs (default runs/).",
        envvar=RUNS_ROOT_ENV,
        show_default=False,
    ),
]
RunDirOption = Annotated[Path | None, typer.Option("--run-dir", help="One run's directory.")]
RunIdOption = Annotated[str | None, typer.Option("--run-id", help="A run under the runs root.")]
PostgresDsnOption = Annotated[str | None, typer.Option(help="Sink DSN (default: from run.json).")]
SinkTableOption = Annotated[
    str | None, typer.Option(help="events or events_append (default: from run.json).")
]
