"""`tools experiment run`: one resilience experiment end to end (playbooks/chaos.yml calls it once)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tools.commands.options import RunDirOption, RunIdOption, RunsRootOption
from tools.commands.produce import parse_meta
from tools.commands.prune import KeepRunsOption
from tools.errors import EXIT_BAD_INPUT, ToolError, one_line_errors
from tools.experiment.experiment import ExperimentSpec, run_experiment
from tools.experiment.producer import ContainerSettings
from tools.recovery import RecoveryParams
from tools.retention import DEFAULT_KEEP_RUNS
from tools.run.meta import DEFAULT_TOPIC

app = typer.Typer(
    help="The resilience experiment: load, faults (always restored), validation of every id, report.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command("run")
@one_line_errors
def run(
    scenario: Annotated[
        str, typer.Option("--scenario", "-s", help="Scenario name (scenarios/<name>.yml) or path.")
    ],
    bootstrap_servers: Annotated[
        str, typer.Option(help="Kafka bootstrap servers as this host reaches them (recorded in run.json).")
    ] = "",
    postgres_dsn: Annotated[str, typer.Option(help="Sink DSN (recorded in run.json).")] = "",
    topic: Annotated[str, typer.Option(help="Topic the producer writes.")] = DEFAULT_TOPIC,
    seed: Annotated[int | None, typer.Option(help="Seed for a random scenario.")] = None,
    duration: Annotated[
        str | None, typer.Option(help="Chaos phase length of a random scenario, Go syntax like 15m.")
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(help="docker (built in) or pumba (default: pumba when a binary is configured)."),
    ] = None,
    pumba_bin: Annotated[
        str | None, typer.Option(help="Pumba binary (default $CHAOSBED_PUMBA_BIN, then PATH).")
    ] = None,
    hosts_file: Annotated[
        Path | None,
        typer.Option("--hosts", help="VM hosts file: services that are systemd units reached over SSH."),
    ] = None,
    profile: Annotated[str | None, typer.Option(help="Pipeline profile recorded in run.json.")] = None,
    sink_table: Annotated[
        str | None, typer.Option(help="Sink table to validate: events or events_append.")
    ] = None,
    rate: Annotated[
        float, typer.Option(help="Producer events per second; 0 = as fast as possible.")
    ] = 1000.0,
    baseline: Annotated[
        float,
        typer.Option(
            help="Seconds of steady state before the chaos phase; also the report's baseline window."
        ),
    ] = RecoveryParams().baseline_s,
    cooldown: Annotated[
        float, typer.Option(help="Seconds the producer keeps running after the chaos phase.")
    ] = 45.0,
    settle: Annotated[
        float, typer.Option(help="Before validating: the sink's row count must stay unchanged this long.")
    ] = 15.0,
    settle_timeout: Annotated[float, typer.Option(help="Validate anyway after waiting this long.")] = 600.0,
    run_dir: RunDirOption = None,
    run_id: RunIdOption = None,
    runs_root: RunsRootOption = None,
    producer: Annotated[
        str | None,
        typer.Option(
            help="The producer container as JSON (or @file): image, bootstrap_servers, name, network, "
            "hostname, aliases, mounts, labels, runs_root. Default: a local `tools produce` process."
        ),
    ] = None,
    kafka_config: Annotated[
        list[str] | None,
        typer.Option("--kafka-config", "-X", help="Producer librdkafka setting key=value (repeatable)."),
    ] = None,
    meta: Annotated[
        str | None, typer.Option(help="JSON object (or @file) merged into run.json: versions, topology...")
    ] = None,
    prometheus: Annotated[
        str | None,
        typer.Option(
            help="Prometheus to save the run's metrics from (default $CHAOSBED_PROMETHEUS_URL, else "
            "http://127.0.0.1:9090); 'off' = not saved. Unreachable: one warning, the run goes on."
        ),
    ] = None,
    spark_deploy: Annotated[
        str | None,
        typer.Option(
            help="The Spark deployment the pipeline runs (local, standalone), recorded in run.json: a "
            "fault with `spark_deploy:` another one is recorded not-applicable, nothing done."
        ),
    ] = None,
    keep_runs: KeepRunsOption = DEFAULT_KEEP_RUNS,
) -> None:
    """Run one experiment: create the run, start the producer, baseline, scenario (always restored, also
    on SIGINT/SIGTERM), cooldown, stop the producer, settle, validate, report.

    Prints `run: <run dir>` first. Exit 0 valid; 1 validation, a fault or a restore failed; 2 bad input
    (nothing was started); 128+N stopped by signal N.
    """
    if not bootstrap_servers:
        raise ToolError("no Kafka bootstrap servers: pass --bootstrap-servers", EXIT_BAD_INPUT)
    if not postgres_dsn:
        raise ToolError("no sink DSN: pass --postgres-dsn", EXIT_BAD_INPUT)
    spec = ExperimentSpec(
        scenario=scenario,
        bootstrap_servers=bootstrap_servers,
        postgres_dsn=postgres_dsn,
        topic=topic,
        seed=seed,
        duration=duration,
        executor=executor,
        pumba_bin=pumba_bin,
        hosts_file=hosts_file,
        profile=profile,
        sink_table=sink_table,
        rate=rate,
        baseline_s=baseline,
        cooldown_s=cooldown,
        settle_s=settle,
        settle_timeout_s=settle_timeout,
        run_dir=run_dir,
        run_id=run_id,
        runs_root=runs_root,
        producer=ContainerSettings.parse(producer) if producer else None,
        kafka_config=list(kafka_config or []),
        meta=parse_meta(meta),
        prometheus_url=prometheus,
        spark_deploy=spark_deploy,
        keep_runs=keep_runs,
    )
    result = run_experiment(spec)
    if result.exit_code:
        raise typer.Exit(result.exit_code)
