"""`tools chaos ...`: run, plan, restore and validate fault scenarios.

Exit codes: 0 ok, 2 bad input (nothing touched), 1 a fault (or a restore) failed, 130/143 interrupted
by SIGINT/SIGTERM after every active fault was restored.
"""

from __future__ import annotations

import functools
import json
import os
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from docker.errors import DockerException, ImageNotFound
from requests.exceptions import RequestException

from tools.errors import EXIT_BAD_INPUT, EXIT_FINDING, ToolError, one_line_errors

app = typer.Typer(
    help="Inject faults with Pumba's vocabulary into containers (and systemd hosts); always restore.",
    no_args_is_help=True,
    add_completion=False,
)

# Imports below the app so `tools.cli` can always import `app`, even while a module is broken.
from tools.chaos import targets  # noqa: E402
from tools.chaos.config import RULE_COMMENT_PREFIX, ChaosConfig  # noqa: E402
from tools.chaos.deployment import SPARK_DEPLOYS, check_deploy, recorded, require_known  # noqa: E402
from tools.chaos.dryrun import dry_run  # noqa: E402
from tools.chaos.durations import format_duration, format_offset  # noqa: E402
from tools.chaos.executors import build_executor  # noqa: E402
from tools.chaos.journal import Journal  # noqa: E402
from tools.chaos.kinds import NETWORK_KINDS  # noqa: E402
from tools.chaos.outcome import FaultOutcome, is_failure  # noqa: E402
from tools.chaos.pumba import PumbaMappingError, pumba_argv  # noqa: E402
from tools.chaos.pumba.executor import PUMBA_ENV, find_pumba  # noqa: E402
from tools.chaos.restore import RestoreReport, RunLock, restore_all, restore_dir  # noqa: E402
from tools.chaos.runner import Runner  # noqa: E402
from tools.chaos.scenario import Scenario, load_named  # noqa: E402
from tools.chaos.systemd.executor import check_units, check_vm_schedule, sweep_host  # noqa: E402
from tools.chaos.triggers import TriggerContext, context_settings, read_run_json  # noqa: E402
from tools.chaos.vm_hosts import VmHost, load_hosts  # noqa: E402
from tools.commands.options import RunDirOption, RunIdOption, RunsRootOption  # noqa: E402
from tools.metrics.injector import FaultGauge  # noqa: E402
from tools.run.layout import JOURNAL_FILE, RUN_JSON, new_run_dir, run_id_of  # noqa: E402
from tools.run.timeline import read_timeline  # noqa: E402

P = ParamSpec("P")
R = TypeVar("R")
ScenarioOpt = Annotated[
    str, typer.Option("--scenario", "-s", help="Scenario name (scenarios/<name>.yml) or path.")
]
SeedOpt = Annotated[
    int | None, typer.Option("--seed", help="Seed for a random scenario (overrides the file).")
]
DurationOpt = Annotated[
    str | None,
    typer.Option("--duration", help="Chaos phase length, Go syntax like 15m (overrides the file)."),
]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Skip the checks against the Docker engine.")]
SparkDeployOpt = Annotated[
    str | None,
    typer.Option(
        "--spark-deploy",
        help=f"The Spark deployment running ({', '.join(SPARK_DEPLOYS)}): a fault with `spark_deploy:` "
        "another one is not applicable (recorded, nothing done). Default: the run's run.json.",
    ),
]
HostsOpt = Annotated[
    Path | None,
    typer.Option(
        "--hosts",
        help="VM hosts file: these services are systemd units reached over SSH (playbooks/chaos.yml "
        "writes it from the inventory).",
    ),
]


def _hosts(path: Path | None) -> dict[str, VmHost]:
    return load_hosts(path) if path is not None else {}


def _check_engine(loaded: Scenario, cfg: ChaosConfig, hosts: dict[str, VmHost]) -> Any:
    """Every target must exist: containers on the engine, units on their hosts (over SSH)."""
    faults = loaded.applicable()  # another deployment's targets need not exist
    check_vm_schedule(faults, hosts, loaded.path)
    client = targets.connect()
    on_engine = [f for f in faults if not set(f.targets) & set(hosts)]
    targets.check_schedule(client, cfg, on_engine, loaded.path)
    check_units(hosts, {t for f in faults for t in f.targets})
    return client


def _check_pumba(loaded: Scenario, pumba_bin: str, cfg: ChaosConfig) -> None:
    """Refuse, before anything is touched, a fault Pumba cannot express exactly."""
    for action in loaded.schedule.actions:
        if action.not_applicable:
            continue
        try:
            pumba_argv(action, "x", pumba_bin=pumba_bin, image=cfg.nettools_image, peer_ips=["192.0.2.1"])
        except PumbaMappingError as exc:
            raise ToolError(
                f"{loaded.path}: fault #{action.fault.index} ({action.fault.name}): {exc}", EXIT_BAD_INPUT
            ) from None


def _check_image(client: Any, loaded: Scenario, cfg: ChaosConfig) -> None:
    """Network faults need the local nettools image; it is never pulled (there may be no registry)."""
    if not any(a.kind in NETWORK_KINDS and not a.not_applicable for a in loaded.schedule.actions):
        return
    try:
        client.images.get(cfg.nettools_image)
    except ImageNotFound:
        raise ToolError(
            f"{loaded.path}: network faults need the image {cfg.nettools_image}, which is not on this engine "
            "(build it with `make setup`; chaosbed never pulls it)",
            EXIT_BAD_INPUT,
        ) from None


def engine_errors(func: Callable[P, R]) -> Callable[P, R]:
    """An engine that fails mid-command (daemon gone, socket error) is one line, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (DockerException, RequestException) as exc:
            raise ToolError(
                f"Docker engine error: {exc}; run `tools chaos restore --all` once the engine is back",
                EXIT_FINDING,
            ) from None

    return wrapper


def _print_plan(loaded: Scenario) -> None:
    schedule = loaded.schedule
    seed = f", seed {schedule.seed}" if schedule.seed is not None else ""
    typer.echo(
        f"scenario {schedule.name} ({loaded.path}): {len(schedule.actions)} faults over "
        f"{format_duration(schedule.phase_ms)}{seed}; "
        f"at most {loaded.max_brokers_down} broker(s) down at once"
        + (" (quorum loss allowed)" if loaded.allow_quorum_loss else "")
    )
    cells = []
    for row in schedule.describe():
        until = "end of phase" if row["held_until_end"] else row["until"]
        when = f"{row['at']} -> {until}"
        if row["trigger"]:  # fires on a pipeline event, watched from `at` on
            when = f"{row['trigger']} (from {row['at']}, by {until})"
        params = json.dumps(row["params"], separators=(",", ":"))
        if row["not_applicable"]:
            params += f" not-applicable: {row['not_applicable']}"
        elif row["spark_deploy"]:
            params += f" (only with spark_deploy {row['spark_deploy']})"
        cells.append((when, row["id"], row["kind"], row["target"], params))
    widths = [max((len(c[i]) for c in cells), default=0) for i in range(4)]
    for *columns, params in cells:
        typer.echo("  " + " ".join(f"{c:<{w}}" for c, w in zip(columns, widths, strict=True)) + f" {params}")


@app.command("validate-scenario")
@one_line_errors
@engine_errors
def validate_scenario(
    file: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    seed: SeedOpt = None,
    duration: DurationOpt = None,
    offline: OfflineOpt = False,
    hosts_file: HostsOpt = None,
    spark_deploy: SparkDeployOpt = None,
) -> None:
    """Validate a scenario file (and, unless --offline, its targets against the engine)."""
    cfg = ChaosConfig.from_env()
    loaded = load_named(str(file), cfg, seed, duration, check_deploy(spark_deploy))
    hosts = _hosts(hosts_file)
    if offline:
        check_vm_schedule(loaded.applicable(), hosts, loaded.path)
    else:
        _check_engine(loaded, cfg, hosts)
    typer.echo(
        f"ok: {file}: {len(loaded.schedule.actions)} faults over {format_duration(loaded.schedule.phase_ms)}"
    )


@app.command("plan")
@one_line_errors
@engine_errors
def plan(
    scenario: ScenarioOpt,
    seed: SeedOpt = None,
    duration: DurationOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    offline: OfflineOpt = False,
    hosts_file: HostsOpt = None,
    spark_deploy: SparkDeployOpt = None,
) -> None:
    """Validate and print the schedule with offsets from the chaos phase start; touches nothing."""
    cfg = ChaosConfig.from_env()
    loaded = load_named(scenario, cfg, seed, duration, check_deploy(spark_deploy))
    hosts = _hosts(hosts_file)
    if offline:
        check_vm_schedule(loaded.applicable(), hosts, loaded.path)
    else:
        _check_engine(loaded, cfg, hosts)
    if as_json:
        doc = {
            "scenario": loaded.schedule.name,
            "file": str(loaded.path),
            "seed": loaded.schedule.seed,
            "phase_ms": loaded.schedule.phase_ms,
            "spark_deploy": loaded.schedule.spark_deploy,
            "faults": loaded.schedule.describe(),
        }
        typer.echo(json.dumps(doc, indent=2))
    else:
        _print_plan(loaded)


def _summary(run_dir: Path, planned: int, started: int) -> list[dict[str, Any]]:
    lines = read_timeline(run_dir)
    never = f"; {planned - started} of {planned} never started" if started < planned else ""
    typer.echo(f"chaos run {run_dir}: {len(lines)} faults recorded{never}")
    for rec in sorted(lines, key=lambda r: r["start_ms"]):
        seconds = (rec["end_ms"] - rec["start_ms"]) / 1000
        typer.echo(
            f"  {rec['start']}  {rec['fault_id'].rsplit('/', 1)[-1]:<14} {rec['kind']:<19} "
            f"{rec['target']:<10} {seconds:7.1f}s  {rec['outcome']}"
        )
    return lines


def _pumba_bin(executor: str | None, pumba_bin: str | None) -> str | None:
    """The Pumba binary to use, or None for the built-in executor.

    --pumba-bin or $CHAOSBED_PUMBA_BIN select Pumba unless --executor docker; --executor pumba alone
    also looks for `pumba` on PATH.
    """
    if executor not in (None, "docker", "pumba"):
        raise ToolError(f"--executor must be docker or pumba, got {executor!r}", EXIT_BAD_INPUT)
    if executor == "docker":
        return None
    if executor == "pumba" or pumba_bin or os.environ.get(PUMBA_ENV):
        return find_pumba(pumba_bin)
    return None


# SIGHUP too: a closed terminal must not leave faults behind.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _execute(runner: Runner, journal: Journal, lock: RunLock, run_dir: Path) -> int:
    """Run with the stop signals routed to the runner; returns the exit code."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if runner.interrupted_by is None:
            typer.echo(f"{signal.Signals(signum).name}: restoring every active fault, then exiting", err=True)
        runner.interrupt(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    exit_code = EXIT_FINDING  # unless the run gets to the end below
    try:
        runner.run()
        lines = _summary(run_dir, len(runner.schedule.actions), len(runner.started))
        report = runner.final_restore
        for fault_id, why in report.failed if report else []:
            typer.echo(f"error: could not restore {fault_id}: {why}", err=True)
        failed = bool(report and report.failed) or any(is_failure(rec["outcome"]) for rec in lines)
        exit_code = EXIT_FINDING if failed else 0
        if runner.interrupted_by is not None:
            exit_code = 128 + runner.interrupted_by
    finally:
        journal.run_end(exit_code)
        lock.release()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return exit_code


def _trigger_context(
    client: Any, cfg: ChaosConfig, loaded: Scenario, run_dir: Path, dsn: str | None, brokers: str | None
) -> TriggerContext:
    """Triggers and dynamic targets reach the database and brokers given, else those of the run's run.json."""
    recorded = context_settings(read_run_json(run_dir / RUN_JSON))
    return TriggerContext(
        client,
        cfg,
        dsn or recorded["postgres_dsn"],
        brokers,
        recorded["topic"],
        loaded.schedule.seed,
        recorded_bootstrap=recorded["bootstrap_servers"],
    )


@app.command("run")
@one_line_errors
@engine_errors
def run(
    scenario: ScenarioOpt,
    run_dir: RunDirOption = None,
    run_id: RunIdOption = None,
    runs_root: RunsRootOption = None,
    seed: SeedOpt = None,
    duration: DurationOpt = None,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor", help="docker (built in) or pumba (default: pumba when a binary is configured)."
        ),
    ] = None,
    pumba_bin: Annotated[
        str | None, typer.Option("--pumba-bin", help="Pumba binary (default $CHAOSBED_PUMBA_BIN, then PATH).")
    ] = None,
    dry_run_: Annotated[
        bool, typer.Option("--dry-run", help="Resolve and print every call; change nothing.")
    ] = False,
    hosts_file: HostsOpt = None,
    postgres_dsn: Annotated[
        str | None,
        typer.Option(
            "--postgres-dsn", help="Where `after: sink-commit` LISTENs (default: the run's run.json)."
        ),
    ] = None,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            "--bootstrap-servers",
            help="Brokers that `target: kafka-leader-most` reads leaders from (default: the run's run.json).",
        ),
    ] = None,
    spark_deploy: SparkDeployOpt = None,
) -> None:
    """Run a scenario in real time; writes chaos-journal.jsonl and timeline.jsonl; always restores.

    The run goes to --run-dir, or --run-id under the runs root, or a new run <UTC time>-<scenario name>.
    """
    cfg = ChaosConfig.from_env()
    if runs_root is not None:
        cfg = replace(cfg, runs_root=runs_root)
    deploy = check_deploy(spark_deploy)
    loaded = load_named(scenario, cfg, seed, duration)
    run_dir = new_run_dir(run_dir, run_id, cfg.runs_root, loaded.schedule.name)
    run_id = run_id_of(run_dir)
    loaded = loaded.on(deploy or recorded(read_run_json(run_dir / RUN_JSON)))
    require_known(loaded.schedule, loaded.path)
    hosts = _hosts(hosts_file)
    bin_path = _pumba_bin(executor, pumba_bin)
    if bin_path:
        _check_pumba(loaded, bin_path, cfg)
    client = _check_engine(loaded, cfg, hosts)
    _check_image(client, loaded, cfg)
    if dry_run_:
        planner = build_executor(client, cfg, run_id, pumba_bin=bin_path, hosts=hosts)
        triggers = {a.short_id: a.fault.trigger for a in loaded.schedule.actions}
        context = _trigger_context(client, cfg, loaded, run_dir, postgres_dsn, bootstrap_servers)
        for row in dry_run(planner, loaded.schedule, run_id, lambda rule: context.resolve(rule)[0]):
            trigger = triggers.get(row["id"])
            when = format_offset(row["at_ms"])
            when = f"{trigger.describe()} (from {when})" if trigger else when
            typer.echo(f"{when} {row['id']} {row['kind']} {row['target']}")
            for call in row["call"]:
                typer.echo(f"    {call}")
        return
    if (run_dir / JOURNAL_FILE).exists():
        raise ToolError(
            f"{run_dir} already holds a chaos run (restore it with `tools chaos restore --run-dir {run_dir}` "
            "and use a new --run-dir)",
            EXIT_BAD_INPUT,
        )
    lock = RunLock(run_dir)
    if not lock.acquire():
        raise ToolError(f"{run_dir} is in use by pid {lock.holder()}", EXIT_BAD_INPUT)
    journal = Journal(run_dir)
    chosen = build_executor(
        client, cfg, run_id, pumba_bin=bin_path, hosts=hosts, journal=journal, run_dir=run_dir
    )
    triggers = _trigger_context(client, cfg, loaded, run_dir, postgres_dsn, bootstrap_servers)
    faults_active = FaultGauge()
    faults_active.serve()  # chaosbed_fault_active for Prometheus; a busy port is only a warning
    runner = Runner(
        client,
        cfg,
        loaded.schedule,
        chosen,
        run_dir,
        run_id,
        journal,
        triggers=triggers,
        faults_active=faults_active,
    )
    exit_code = _execute(runner, journal, lock, run_dir)
    if exit_code:
        raise typer.Exit(exit_code)


def _print_report(report: RestoreReport) -> None:
    if report.skipped_active:
        typer.echo(f"{report.run_dir}: skipped, the run is still active (it restores itself)")
        return
    for fault_id, outcome in report.closed:
        typer.echo(f"{report.run_dir}: restored {fault_id} ({outcome})")
    for fault_id, why in report.failed:
        typer.echo(f"{report.run_dir}: FAILED to restore {fault_id}: {why}", err=True)
    for name in report.sidecars_removed:
        typer.echo(f"removed sidecar {name}")
    for pid in report.pumba_stopped:
        typer.echo(f"{report.run_dir}: stopped orphaned pumba pid {pid}")
    for rule in report.rules_swept:
        typer.echo(f"removed stray rule {rule}")


def _sweep_hosts(hosts: dict[str, VmHost], reports: list[RestoreReport]) -> RestoreReport:
    """Stray rules, drop-ins and disk-fill ballasts on every systemd host, except an active run's."""
    active = tuple(f"{RULE_COMMENT_PREFIX}{run_id_of(r.run_dir)}/" for r in reports if r.skipped_active)
    sweep = RestoreReport(Path("systemd hosts"))
    seen: set[tuple[str, int]] = set()
    for host in hosts.values():
        if (host.ssh_host, host.ssh_port) in seen:
            continue
        seen.add((host.ssh_host, host.ssh_port))
        try:
            units = (
                h.unit for h in hosts.values() if (h.ssh_host, h.ssh_port) == (host.ssh_host, host.ssh_port)
            )
            sweep.rules_swept += sweep_host(host, active, tuple(dict.fromkeys(units)))
        except FaultOutcome as exc:
            sweep.failed.append((host.service, exc.detail))
    return sweep


@app.command("restore")
@one_line_errors
@engine_errors
def restore(
    run_dir: RunDirOption = None,
    run_id: RunIdOption = None,
    all_runs: Annotated[
        bool, typer.Option("--all", help="Every run under the runs root, leftover sidecars and stray rules.")
    ] = False,
    runs_root: RunsRootOption = None,
    hosts_file: Annotated[
        Path | None,
        typer.Option(
            "--hosts", help="With --all: also sweep these systemd hosts (rules, drop-ins, ballasts)."
        ),
    ] = None,
) -> None:
    """Undo everything chaos left applied (after a crash, SIGKILL included). Idempotent."""
    if sum((run_dir is not None, run_id is not None, all_runs)) != 1:
        raise ToolError("give exactly one of --run-dir DIR, --run-id ID or --all", EXIT_BAD_INPUT)
    if hosts_file is not None and not all_runs:
        raise ToolError("--hosts goes with --all (a run's journal already names its hosts)", EXIT_BAD_INPUT)
    cfg = ChaosConfig.from_env()
    if runs_root is not None:
        cfg = replace(cfg, runs_root=runs_root)
    if run_id is not None:
        run_dir = new_run_dir(None, run_id, cfg.runs_root, "")
    hosts = _hosts(hosts_file)
    client = targets.connect()
    reports = restore_all(client, cfg) if all_runs else [restore_dir(client, cfg, run_dir or Path())]
    if hosts:
        reports.append(_sweep_hosts(hosts, reports))
    for report in reports:
        _print_report(report)
    if not any(
        r.closed or r.sidecars_removed or r.pumba_stopped or r.rules_swept or r.failed for r in reports
    ):
        typer.echo("nothing to restore")
    if any(r.failed for r in reports):
        raise ToolError("some faults could not be restored (see above); run restore again", EXIT_FINDING)


def main() -> None:
    app()
