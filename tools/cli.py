"""The `tools` command: one sub-command per module, composed here."""

from __future__ import annotations

import typer

from tools.chaos.cli import app as chaos_app
from tools.commands import experiment, produce, prune, report, validate, watch

app = typer.Typer(
    help="chaosbed: run resilience experiments; produce load, inject faults, validate every id, report.",
    no_args_is_help=True,
    add_completion=False,
)
app.command(name="produce")(produce.produce)
app.command(name="validate")(validate.validate)
app.command(name="report")(report.report)
app.command(name="prune")(prune.prune)
chaos_app.command(name="watch")(watch.watch)  # reads a run; lives with the run commands
app.add_typer(chaos_app, name="chaos")
app.add_typer(experiment.app, name="experiment")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
