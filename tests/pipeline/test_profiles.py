"""The checker must catch what a known-unsafe configuration does, and pass the safe one.

By chaos alone, with no failpoint: the CI scenario kills the driver right after a sink
commit (`after: sink-commit`), and the unsafe sink's duplicates come from that replayed
batch. Deterministic, for the safe sink: the Spark job's `crash-after-commit` failpoint
kills the driver right after the sink committed a batch and before Spark's commit log
recorded it, so the restarted job is certain to replay that batch, which it absorbs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from .conftest import ROOT, Pipeline, run_of, run_playbook

TOOLS = str(Path(sys.executable).parent / "tools")


def provision(*extra: str) -> None:
    result = run_playbook("playbooks/site.yml", *extra)
    assert result.returncode == 0, result.stdout[-3000:]


def tools(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TOOLS, *args], cwd=ROOT, capture_output=True, text=True, timeout=900)


def wait_for_exit(pipeline: Pipeline, service: str, timeout: float = 180) -> int:
    container = pipeline.container(service)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "exited":
            return int(container.attrs["State"]["ExitCode"])
        time.sleep(1)
    raise AssertionError(f"{service} did not exit within {timeout}s (failpoint never fired)")


def wait_for_progress_after_restart(pipeline: Pipeline, timeout: float = 300) -> None:
    """The restarted query's first progress report: the re-executed batch is done by then."""
    container = pipeline.container("spark")
    container.reload()
    started = container.attrs["State"]["StartedAt"]
    deadline = time.monotonic() + timeout
    with pipeline.connect() as conn, conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute("SELECT count(*) FROM spark_progress WHERE reported_at > %s::timestamptz", (started,))
            if cur.fetchone()[0] > 0:
                return
            time.sleep(2)
    raise AssertionError("the restarted Spark job reported no progress")


def crash_and_replay(pipeline: Pipeline, runs: Path, profile: str, sink_table: str) -> dict:
    """Arm the failpoint for a new run, produce, let it kill the driver after a commit, restart, validate."""
    run_id = f"test-{profile}-{uuid.uuid4().hex[:6]}"
    provision("-e", f"profile={profile}", "-e", f"spark_failpoint=crash-after-commit:{run_id}")
    produced = tools(
        "produce",
        "--run-id",
        run_id,
        "--runs-root",
        str(runs),
        "--count",
        "3000",
        "--rate",
        "0",
        "--bootstrap-servers",
        pipeline.bootstrap_servers,
        "--topic",
        pipeline.topic,
        "--postgres-dsn",
        pipeline.postgres_dsn,
        "--profile",
        profile,
        "--sink-table",
        sink_table,
    )
    assert produced.returncode == 0, produced.stderr
    assert wait_for_exit(pipeline, "spark") == 137
    pipeline.container("spark").start()
    wait_for_progress_after_restart(pipeline)
    checked = tools("validate", str(runs / run_id), "--json", "--settle", "10", "--settle-timeout", "300")
    assert checked.returncode in (0, 1), checked.stderr
    result = json.loads(checked.stdout)
    result["exit_code"] = checked.returncode
    return result


def test_safe_sink_absorbs_the_same_replay(pipeline: Pipeline, tmp_path: Path, provisions_back: None) -> None:
    result = crash_and_replay(pipeline, tmp_path, "safe", "events")
    assert result["exit_code"] == 0, result
    assert result["duplicate_count"] == 0
    assert result["missing_count"] == 0
    assert result["acked_count"] == 3000
    assert result["replays_absorbed"] >= 1


def test_chaos_alone_catches_the_unsafe_sink(pipeline: Pipeline, provisions_back: None) -> None:
    """`chaos.yml -e scenario=ci -e profile=unsafe-sink` fails with duplicates, no failpoint armed: the
    scenario fills Spark's checkpoint volume as a batch starts (the batch commits to PostgreSQL, its commit
    log cannot be written) and SIGKILLs Spark on the first sink commit after a restart
    (tools/chaos/triggers.py); both make Spark run a committed batch again."""
    # What is asserted needs no latency baseline and no last recovery: both shortened (CI runs it).
    result = run_playbook(
        "playbooks/chaos.yml",
        "-e", "scenario=ci",
        "-e", "profile=unsafe-sink",
        "-e", "chaos_baseline_seconds=20",
        "-e", "chaos_cooldown_seconds=15",
    )  # fmt: skip
    run = run_of(result.stdout)
    env = pipeline.container("spark").attrs["Config"]["Env"]
    assert "CHAOSBED_FAILPOINT=" in env, env
    assert result.returncode != 0, result.stdout[-4000:]
    validation = json.loads((run / "validation.json").read_text())
    assert validation["sink_table"] == "events_append"
    assert validation["duplicate_count"] > 0, validation
    assert validation["missing_count"] == 0, validation
    # Localised: sink duplicates, each row from a replayed batch (Spark ran it again: its commit log did
    # not hold it); no Kafka-layer anomaly, no Spark gap, skip or divergent replay.
    classes = validation["layers"]["classes"]
    found = {name for name, c in classes.items() if c["count"] and not c["allowed"]}
    assert found == {"duplicate"}, found
    replayed = {f"{b['query_id']}/{b['batch_id']}" for b in classes["sink-ahead-of-checkpoint"]["witnesses"]}
    assert classes["duplicate"]["witnesses"]
    assert all(w["batch"] in replayed and w["batch_replays"] >= 1 for w in classes["duplicate"]["witnesses"])
    faults = [json.loads(line) for line in (run / "timeline.jsonl").read_text().splitlines() if line.strip()]
    triggered = [f for f in faults if (f.get("trigger") or {}).get("event") == "sink-commit"]
    assert triggered and all(f["outcome"] == "ok" for f in triggered), triggered
    assert all(f["trigger"]["fire_ms"] >= f["trigger"]["event_ms"] for f in triggered)
    fills = [f for f in faults if f["kind"] == "disk fill" and f["target"] == "spark"]
    assert [(f["outcome"], f["trigger"]["event"]) for f in fills] == [("ok", "batch-start")], fills
    # `make bench` on the pipeline left on this profile stops at once with one line (no waiting loop).
    bench = subprocess.run(
        [sys.executable, "benchmarks/bench.py", "--skip-kafka", "--skip-postgres"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert bench.returncode == 2, bench.stderr
    assert bench.stderr.count("\n") == 1 and "unsafe profile" in bench.stderr, bench.stderr
    assert "make up" in bench.stderr
