"""Option types shared by the commands that read a run (validate, report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RunArgument = Annotated[
    Path | None, typer.Argument(help="Run directory, or a run id under --run-dir.", show_default=False)
]
RunsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--run-dir",
        "--runs-dir",
        help="Root of run directories (default runs/).",
        envvar="CHAOSBED_RUN_DIR",
    ),
]
RunIdOption = Annotated[str | None, typer.Option(help="Run id under --run-dir.")]
PostgresDsnOption = Annotated[str | None, typer.Option(help="Sink DSN (default: from run.json).")]
SinkTableOption = Annotated[
    str | None, typer.Option(help="events or events_append (default: from run.json).")
]
