"""Where runs live and what each file of a run is called.

A run is the directory `<runs root>/<run id>`; its name is its run id. The runs root is `runs/` unless
$CHAOSBED_RUNS_ROOT or --runs-root says otherwise. Options mean the same in every command:
--runs-root DIR (the root of all runs), --run-dir DIR (one run's directory), --run-id ID (a run under the
root); validate and report also take a positional RUN (a run directory, or a run id under the root).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from tools.errors import EXIT_BAD_INPUT, ToolError
from tools.run.clock import stamp

RUNS_ROOT_ENV = "CHAOSBED_RUNS_ROOT"
DEFAULT_RUNS_ROOT = Path("runs")

# The files of a run.
RUN_JSON = "run.json"  # what later commands need: DSN, brokers, topic, sink table, profile, settings
LEDGER_FILE = "ledger.log"  # the producer's record of every id it attempted and how each ended
PRODUCER_LOG = "producer.log"  # a local producer's output (`tools experiment run` without a container)
TIMELINE_FILE = "timeline.jsonl"  # one line per fault when it ends: the report's fault windows
JOURNAL_FILE = "chaos-journal.jsonl"  # chaos's crash-safe intent log, what `chaos restore` undoes
LOCK_FILE = "chaos.lock"  # held by the chaos run in progress
VALIDATION_FILE = "validation.json"  # `tools validate`'s result
REPORT_FILE = "RESILIENCE_REPORT.md"
REPORT_HTML = "RESILIENCE_REPORT.html"  # `tools report --format html`: the report as one self-contained page
THROUGHPUT_PNG = "throughput.png"
LATENCY_PNG = "latency.png"
RECOVERY_PNG = "recovery_time.png"
SIGNALS_PNG = "signals-{fault}.png"  # the component signals around one fault (its short id)
UNSEEN_PNG = "unseen.png"  # acknowledged but not yet in the sink over time, with Spark's lag per partition
EXPERIMENT_FILE = "experiment.jsonl"  # `tools experiment run`'s phases, one line each as it enters one
PLAN_FILE = "plan.json"  # the schedule the experiment ran (`tools chaos watch`, the report)
METRICS_DIR = (
    "metrics"  # Prometheus range-query results of the run's window, so the report re-renders offline
)
# What the report reads from the sink's tables for the run (per-second series, latencies, Spark's progress,
# Spark's batch executions: tools/report/sink.py), so a re-render needs no database.
SINK_DATA_FILE = "sink_data.json"
OLD_SPARK_BATCHES_FILE = "spark_batches.json"  # older runs saved the batch executions apart; still read

_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_LABEL_JUNK = re.compile(r"[^A-Za-z0-9._-]+")


def runs_root(given: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """--runs-root if given, else $CHAOSBED_RUNS_ROOT, else runs/."""
    if given is not None:
        return given
    env = os.environ if environ is None else environ
    value = env.get(RUNS_ROOT_ENV)
    return Path(value) if value else DEFAULT_RUNS_ROOT


def check_run_id(run_id: str) -> str:
    if not _RUN_ID_RE.match(run_id):
        raise ToolError(
            f"invalid run id {run_id!r}: use letters, digits, '.', '_' or '-' (max 128)", EXIT_BAD_INPUT
        )
    return run_id


def new_run_id(label: str, ms: int | None = None) -> str:
    """`<UTC %Y%m%dT%H%M%SZ>-<label>`, the one scheme for new runs (label: scenario name, "produce", ...)."""
    clean = _LABEL_JUNK.sub("_", label).strip("._-")[:100] or "run"
    return check_run_id(f"{stamp(ms)}-{clean}")


def run_id_of(run_dir: Path) -> str:
    """A run's id is its directory's name."""
    name = run_dir.resolve().name
    if not _RUN_ID_RE.match(name):
        raise ToolError(
            f"invalid run directory {run_dir}: its name is the run id and must use letters, digits, "
            "'.', '_' or '-' (max 128)",
            EXIT_BAD_INPUT,
        )
    return name


def new_run_dir(run_dir: Path | None, run_id: str | None, root: Path | None, label: str) -> Path:
    """A run to create or resume: --run-dir, else --run-id under the root, else a new id."""
    if run_dir is not None and run_id is not None:
        raise ToolError("give --run-dir or --run-id, not both", EXIT_BAD_INPUT)
    if run_dir is not None:
        run_id_of(run_dir)
        return run_dir
    return runs_root(root) / check_run_id(new_run_id(label) if run_id is None else run_id)


def find_run(run: Path | None, run_dir: Path | None, run_id: str | None, root: Path | None) -> Path:
    """An existing run: positional RUN (a directory, or an id under the root), --run-dir or --run-id."""
    given = [g for g in (run, run_dir, run_id) if g is not None]
    if len(given) > 1:
        raise ToolError("give one of RUN, --run-dir or --run-id", EXIT_BAD_INPUT)
    base = runs_root(root)
    if run is not None:
        if (run / RUN_JSON).is_file():
            candidate = run
        elif not run.exists() and len(run.parts) == 1 and (base / run.name / RUN_JSON).is_file():
            candidate = base / run.name
        else:
            candidate = run
    elif run_dir is not None:
        candidate = run_dir
    elif run_id is not None:
        candidate = base / check_run_id(run_id)
    else:
        raise ToolError("no run given: pass a run directory, --run-dir DIR or --run-id ID", EXIT_BAD_INPUT)
    if not (candidate / RUN_JSON).is_file():
        raise ToolError(f"no run at {candidate}: {candidate / RUN_JSON} not found", EXIT_BAD_INPUT)
    return candidate
