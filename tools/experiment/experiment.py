"""One resilience experiment: create the run, produce, baseline, scenario (always restored), cooldown,
stop the producer, settle, validate, report.

Everything that can be checked is checked before the producer starts: bad input is exit 2 with nothing
touched. The scenario runs in `tools chaos run` (a child process, which restores on its own stop signals);
`tools chaos restore --run-dir` follows it whatever happened.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg2
import typer

from tools.chaos.config import ChaosConfig
from tools.chaos.deployment import check_deploy
from tools.chaos.scenario import Scenario, load_named
from tools.errors import EXIT_BAD_INPUT, EXIT_FINDING, ToolError
from tools.experiment.cluster import topic_durability
from tools.experiment.producer import ContainerProducer, ContainerSettings, LocalProducer, Producer
from tools.metrics.endpoints import prometheus_url
from tools.metrics.save import PrometheusUnavailable, save_metrics
from tools.pgconn import connect
from tools.producer import parse_config_overrides
from tools.progress import Steps
from tools.recovery import RecoveryParams
from tools.report.data import save_sink_data
from tools.retention import DEFAULT_KEEP_RUNS, check_keep, forget_pruned, prune_runs
from tools.run.layout import JOURNAL_FILE, METRICS_DIR, RUN_JSON, new_run_dir, run_id_of
from tools.run.meta import DEFAULT_TOPIC, check_sink_table, create_run, update_run
from tools.run.phases import PhaseLog, write_plan
from tools.validation import wait_until_settled

# Stop signals: each ends the experiment early, after the faults are restored and the producer stopped.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# How long the run's first rows may take to reach the sink (a cold Spark driver's first batch).
FIRST_ROWS_TIMEOUT_S = 180.0
# The saved metrics start this long before the producer: the steady state the run began from.
METRICS_LEAD_S = 10.0


@dataclass(frozen=True)
class ExperimentSpec:
    scenario: str
    bootstrap_servers: str  # as this host reaches the brokers
    postgres_dsn: str
    seed: int | None = None
    duration: str | None = None
    executor: str | None = None
    pumba_bin: str | None = None
    hosts_file: Path | None = None
    profile: str | None = None
    sink_table: str | None = None
    topic: str = DEFAULT_TOPIC
    rate: float = 1000.0
    baseline_s: float = RecoveryParams().baseline_s
    cooldown_s: float = 45.0
    settle_s: float = 15.0
    settle_timeout_s: float = 600.0
    run_dir: Path | None = None
    run_id: str | None = None
    runs_root: Path | None = None
    producer: ContainerSettings | None = None  # None: a local `tools produce` process
    kafka_config: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # merged into run.json (versions, topology)
    render_report: bool = True
    # Runs whose rows stay in the sink database: older runs' rows are removed as this one starts.
    keep_runs: int = DEFAULT_KEEP_RUNS
    # Where the run's metrics are range-queried from (None: $CHAOSBED_PROMETHEUS_URL or 127.0.0.1:9090;
    # "" or "off": not saved).
    prometheus_url: str | None = None
    # The Spark deployment the pipeline runs (local, standalone): recorded in run.json, told to the injector
    # (a fault for the other one is not applicable). None: not known (a scenario that gates on it is refused).
    spark_deploy: str | None = None


@dataclass
class Prepared:
    spec: ExperimentSpec
    scenario: Scenario
    run_dir: Path
    durability: dict[str, int]
    producer: Producer

    @property
    def phase_s(self) -> float:
        return self.scenario.schedule.phase_ms / 1000


@dataclass
class ExperimentResult:
    run_dir: Path
    exit_code: int
    chaos_exit: int | None = None
    validate_exit: int | None = None
    restore_exit: int = 0
    report_exit: int | None = None
    interrupted_by: int | None = None
    notes: list[str] = field(default_factory=list)


def _tools(*args: str) -> list[str]:
    return [sys.executable, "-m", "tools", *args]


def scenario_length_s(scenario: str, seed: int | None = None, duration: str | None = None) -> float:
    """The chaos phase's length in seconds, from the scenario loader."""
    return load_named(scenario, ChaosConfig.from_env(), seed, duration).schedule.phase_ms / 1000


def _chaos_args(spec: ExperimentSpec, run_dir: Path) -> list[str]:
    args = ["--scenario", spec.scenario, "--run-dir", str(run_dir)]
    for flag, value in (
        ("--seed", spec.seed),
        ("--duration", spec.duration),
        ("--executor", spec.executor),
        ("--pumba-bin", spec.pumba_bin),
        ("--hosts", spec.hosts_file),
        ("--spark-deploy", spec.spark_deploy),
    ):
        if value is not None and value != "":
            args += [flag, str(value)]
    return args


def _check_numbers(spec: ExperimentSpec) -> None:
    for name, value, low in (
        ("--rate", spec.rate, 0.0),
        ("--baseline", spec.baseline_s, 1.0),
        ("--cooldown", spec.cooldown_s, 0.0),
        ("--settle", spec.settle_s, 0.0),
        ("--settle-timeout", spec.settle_timeout_s, 0.0),
    ):
        if not value >= low:  # also refuses NaN
            raise ToolError(f"{name} must be at least {low:g}, got {value:g}", EXIT_BAD_INPUT)


def prepare(spec: ExperimentSpec) -> Prepared:
    """Every check that needs no change to the pipeline; raises ToolError (exit 2 for bad input)."""
    _check_numbers(spec)
    if spec.executor not in (None, "", "docker", "pumba"):
        raise ToolError(f"--executor must be docker or pumba, got {spec.executor!r}", EXIT_BAD_INPUT)
    if not spec.bootstrap_servers:
        raise ToolError("no Kafka bootstrap servers: pass --bootstrap-servers", EXIT_BAD_INPUT)
    parse_config_overrides(spec.kafka_config)
    if spec.sink_table:
        check_sink_table(spec.sink_table)
    check_keep(spec.keep_runs)
    scenario = load_named(
        spec.scenario, ChaosConfig.from_env(), spec.seed, spec.duration, check_deploy(spec.spark_deploy)
    )
    run_dir = new_run_dir(spec.run_dir, spec.run_id, spec.runs_root, scenario.schedule.name)
    if (run_dir / RUN_JSON).exists() or (run_dir / JOURNAL_FILE).exists():
        raise ToolError(f"run {run_dir} already exists: give a new --run-id or --run-dir", EXIT_BAD_INPUT)
    producer: Producer = (
        ContainerProducer(
            spec.producer, run_dir, spec.topic, spec.rate, spec.kafka_config, ChaosConfig.from_env().run_label
        )
        if spec.producer is not None
        else LocalProducer(run_dir, spec.bootstrap_servers, spec.topic, spec.rate, spec.kafka_config)
    )
    producer.check()
    connect(spec.postgres_dsn, what="sink").close()
    durability = topic_durability(spec.bootstrap_servers, spec.topic)
    # The chaos runner's own checks (targets on the engine, units on their hosts, Pumba, images), as a
    # dry run: it resolves every call and changes nothing.
    dry = subprocess.run(
        _tools("chaos", "run", *_chaos_args(spec, run_dir), "--dry-run"),
        capture_output=True,
        text=True,
        check=False,
    )
    if dry.returncode != 0:
        lines = (dry.stderr or dry.stdout).strip().splitlines()
        why = lines[-1].removeprefix("error: ") if lines else f"exit {dry.returncode}"
        raise ToolError(f"scenario {spec.scenario}: {why}", dry.returncode)
    return Prepared(spec, scenario, run_dir, durability, producer)


class _Stop:
    """Stop signals set an event (every wait returns early) and are passed on to the chaos child."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self.child: subprocess.Popen[bytes] | None = None

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            typer.echo(
                f"{signal.Signals(signum).name}: restoring, stopping the producer, then exiting", err=True
            )
        self.event.set()
        child = self.child
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handler) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def _wait_first_rows(spec: ExperimentSpec, run_id: str, table: str, stop: threading.Event) -> bool:
    """Until a row of the run is in the sink: the baseline then measures a flowing pipeline."""
    deadline = time.monotonic() + FIRST_ROWS_TIMEOUT_S
    with contextlib.closing(connect(spec.postgres_dsn, what="sink")) as conn:
        conn.autocommit = True
        while not stop.is_set() and time.monotonic() < deadline:
            with conn.cursor() as cur:
                # The table name comes from check_sink_table's fixed list.
                cur.execute(f"SELECT 1 FROM {table} WHERE run_id = %s LIMIT 1", (run_id,))
                if cur.fetchone():
                    return True
            stop.wait(1.0)
    return False


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _command_exit(func: Callable[..., None], **kwargs: Any) -> int:
    """Run a `tools` command function in-process; its exit code."""
    try:
        func(**kwargs)
    except typer.Exit as exc:
        return int(exc.exit_code)
    return 0


def run_experiment(spec: ExperimentSpec, prepared: Prepared | None = None) -> ExperimentResult:
    """The whole experiment; the result's exit_code is 0 valid, 1 validation (or a fault) failed,
    128+N interrupted by signal N. Raises ToolError for bad input before anything is started."""
    from tools.commands.report import report
    from tools.commands.validate import validate

    ready = prepared or prepare(spec)
    run_dir = ready.run_dir
    run_id = run_id_of(run_dir)
    sink_table = check_sink_table(spec.sink_table or "events")
    settings = {
        "scenario": spec.scenario,
        "seed": spec.seed,
        "executor": spec.executor or "docker",
        "rate": _number(spec.rate),
        "baseline_seconds": _number(spec.baseline_s),
        "cooldown_seconds": _number(spec.cooldown_s),
        **ready.durability,
    }
    create_run(
        run_dir,
        bootstrap_servers=spec.bootstrap_servers,
        topic=spec.topic,
        postgres_dsn=spec.postgres_dsn,
        profile=spec.profile,
        sink_table=sink_table,
        extra={
            **spec.meta,
            "settings": {**spec.meta.get("settings", {}), **settings},
            **(
                {"topology": {**spec.meta.get("topology", {}), "spark_deploy": spec.spark_deploy}}
                if spec.spark_deploy
                else {}
            ),
        },
    )
    typer.echo(f"run: {run_dir}")
    schedule = ready.scenario.schedule
    write_plan(
        run_dir,
        {
            "scenario": schedule.name,
            "seed": schedule.seed,
            "phase_ms": schedule.phase_ms,
            "faults": schedule.describe(),
        },
    )
    phases = PhaseLog(run_dir)  # where the experiment is, for `tools chaos watch`
    phases.enter("start")
    result = ExperimentResult(run_dir, EXIT_FINDING)
    _retain(spec, run_id, result)
    stop = _Stop()
    started_at = time.time()
    with stop.installed():
        try:
            typer.echo(f"starting the producer ({spec.rate:g} events/s)")
            started_at = time.time()
            ready.producer.start()
            if not _wait_first_rows(spec, run_id, sink_table, stop.event) and not stop.event.is_set():
                result.notes.append(f"no row of the run reached the sink within {FIRST_ROWS_TIMEOUT_S:.0f} s")
                typer.echo(f"warning: {result.notes[-1]}", err=True)
            typer.echo(f"baseline: {spec.baseline_s:g} s of steady state")
            phases.enter("baseline", spec.baseline_s)
            stop.event.wait(spec.baseline_s)
            if not stop.event.is_set():
                typer.echo(f"chaos: scenario {ready.scenario.schedule.name} ({ready.phase_s:g} s)")
                phases.enter("chaos", ready.phase_s)
                result.chaos_exit = _run_chaos(spec, run_dir, stop)
            if not stop.event.is_set():
                typer.echo(f"cooldown: {spec.cooldown_s:g} s")
                phases.enter("cooldown", spec.cooldown_s)
                stop.event.wait(spec.cooldown_s)
        finally:
            result.restore_exit = _restore(run_dir)
            typer.echo(f"producer stopped: {ready.producer.stop()}")
    if stop.signum is not None:
        _save_metrics(spec, run_dir, started_at, result)
        _save_sink(spec, run_dir, result)
        result.interrupted_by = stop.signum
        result.exit_code = 128 + stop.signum
        phases.enter("done", exit_code=result.exit_code)
        return result
    phases.enter("settle", settle_s=spec.settle_s, timeout_s=spec.settle_timeout_s)
    _settle(spec, run_id, sink_table)
    _save_metrics(spec, run_dir, started_at, result)
    _save_sink(spec, run_dir, result)
    phases.enter("validate")
    result.validate_exit = _command_exit(
        validate,
        run=run_dir,
        # Kafka as this host reaches it, for the log audit (a container producer records its own).
        bootstrap_servers=spec.bootstrap_servers,
    )
    if spec.render_report and result.validate_exit in (0, 1):
        phases.enter("report")
        # The Markdown and the same report as one self-contained HTML page.
        result.report_exit = _command_exit(report, run=run_dir, baseline=int(spec.baseline_s), format_="html")
    failed = result.validate_exit, result.chaos_exit, result.restore_exit, result.report_exit
    result.exit_code = EXIT_FINDING if any(failed) else 0
    phases.enter("done", exit_code=result.exit_code)
    typer.echo(f"experiment {'passed' if result.exit_code == 0 else 'failed'}: {run_dir}")
    return result


def _save_metrics(spec: ExperimentSpec, run_dir: Path, started_at: float, result: ExperimentResult) -> None:
    """The run's window of every signal into metrics/ (tools/metrics/save.py). Prometheus missing is one
    warning line, recorded in run.json: metrics observe the run, they never fail it."""
    url = prometheus_url() if spec.prometheus_url is None else spec.prometheus_url
    if url.strip().lower() in ("", "off"):
        update_run(run_dir, metrics={"saved": False, "reason": "not asked for"})
        return
    start, end = started_at - METRICS_LEAD_S, time.time()
    try:
        saved = save_metrics(run_dir, url, start, end)
    except PrometheusUnavailable as exc:
        result.notes.append(f"metrics not saved: {exc}")
        typer.echo(f"warning: {result.notes[-1]}", err=True)
        update_run(run_dir, metrics={"saved": False, "prometheus": url, "reason": str(exc)})
        return
    for name, why in saved.failed.items():
        typer.echo(f"warning: metric {name} not saved: {why}", err=True)
    update_run(
        run_dir,
        metrics={
            "saved": bool(saved.saved),
            "prometheus": url,
            "dir": METRICS_DIR,
            "start": start,
            "end": end,
            "signals": len(saved.saved),
            "failed": saved.failed,
        },
    )
    typer.echo(f"metrics: {len(saved.saved)} signals saved in {run_dir / METRICS_DIR}")


def _save_sink(spec: ExperimentSpec, run_dir: Path, result: ExperimentResult) -> None:
    """What the report reads from the sink for this run into the run directory (tools/report/sink.py: the
    per-second series, latencies, Spark's progress and batch executions); a re-render then needs no
    database. A sink not answering is one warning line."""
    try:
        with contextlib.closing(connect(spec.postgres_dsn, what="sink")) as conn:
            # The baseline of this run's report, and the default's for a re-render without --baseline.
            path = save_sink_data(run_dir, conn, (int(spec.baseline_s), RecoveryParams().baseline_s))
    except (ToolError, psycopg2.Error) as exc:
        result.notes.append(f"sink data not saved: {str(exc).splitlines()[0]}")
        typer.echo(f"warning: {result.notes[-1]}", err=True)
        return
    typer.echo(f"sink: the run's series, latencies, Spark progress and batch executions saved in {path}")


def _retain(spec: ExperimentSpec, run_id: str, result: ExperimentResult) -> None:
    """Remove older runs' rows before this one adds its own; a failure is one warning (the run goes on)."""
    try:
        with contextlib.closing(connect(spec.postgres_dsn, what="sink")) as conn:
            forget_pruned(conn, run_id)
            pruned = prune_runs(conn, spec.keep_runs, protect=[run_id])
    except (ToolError, psycopg2.Error) as exc:
        result.notes.append(f"older runs not removed: {str(exc).splitlines()[0]}")
        typer.echo(f"warning: {result.notes[-1]}", err=True)
        return
    typer.echo(pruned.summary(spec.keep_runs))


def _settle(spec: ExperimentSpec, run_id: str, table: str) -> None:
    """Wait until the run's row count stops changing (the drain), before validating."""
    if spec.settle_s <= 0:
        return
    with contextlib.closing(connect(spec.postgres_dsn, what="sink")) as conn, Steps("settle") as steps:
        steps.step("waiting for the sink's row count to hold")
        if not wait_until_settled(conn, run_id, table, spec.settle_s, spec.settle_timeout_s, steps.detail):
            typer.echo(
                f"warning: sink rows still changing after {spec.settle_timeout_s:.0f}s; validating anyway",
                err=True,
            )


def _run_chaos(spec: ExperimentSpec, run_dir: Path, stop: _Stop) -> int:
    # Its own session: only this process passes it a stop signal, exactly once.
    child = subprocess.Popen(_tools("chaos", "run", *_chaos_args(spec, run_dir)), start_new_session=True)
    stop.child = child
    try:
        code = child.wait()
    finally:
        stop.child = None
    if code:
        typer.echo(f"warning: tools chaos run exited {code}", err=True)
    return code


def _restore(run_dir: Path) -> int:
    """Whatever the chaos run left applied (after a crash of it, say) is undone; a no-op otherwise."""
    if not (run_dir / JOURNAL_FILE).exists():
        return 0
    done = subprocess.run(_tools("chaos", "restore", "--run-dir", str(run_dir)), check=False)
    if done.returncode:
        typer.echo(f"error: tools chaos restore --run-dir {run_dir} exited {done.returncode}", err=True)
    return done.returncode
