"""kill-executor on a real container: only the processes that run a Spark executor's main class die,
the container (the worker) keeps running; a worker without one fails the fault; the pumba executor
refuses it before anything runs."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.docker
EXECUTOR = "org.apache.spark.executor.CoarseGrainedExecutorBackend"
# A stand-in worker: its main process relaunches an "executor" (a sleep carrying the class name in its
# command line) whenever it dies, as a Spark worker does.
# The class name is put together at run time: the stand-in's own command line must not hold it.
WORKER = [
    "sh",
    "-c",
    'c=org.apache.spark.executor; while true; do sh -c "sleep 1000; : $c.CoarseGrainedExecutorBackend" & '
    "wait $!; done",
]


def executor_pid(bed, name: str) -> int | None:
    _code, out = bed.client.containers.get(f"{bed.prefix}{name}").exec_run(
        ["sh", "-c", f"grep -l '[o]{EXECUTOR[1:]}' /proc/[0-9]*/cmdline | cut -d/ -f3"]
    )
    pids = out.decode().split()
    return int(pids[0]) if len(pids) == 1 else None


def test_kill_executor_kills_only_the_executor_and_the_worker_relaunches_it(bed) -> None:
    bed.service("w", command=WORKER)
    bed.service("idle")
    bed.wait_for("the executor", lambda: executor_pid(bed, "w") is not None, 10)
    first = executor_pid(bed, "w")
    path = bed.scenario(
        """
faults:
  - {name: executor kill, kind: kill-executor, target: w, at: 0s}
  - {name: no executor here, kind: kill-executor, target: idle, at: 0s}
"""
    )
    run_dir = bed.runs_dir / "exec"
    dry = bed.cli("run", "--scenario", str(path), "--run-dir", str(bed.runs_dir / "dry"), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "/exec sh -c" in dry.stdout and "kill -s KILL" in dry.stdout
    done = bed.cli("run", "--scenario", str(path), "--run-dir", str(run_dir))
    assert done.returncode == 1, done.stderr  # the idle target's fault failed
    bed.wait_for("a relaunched executor", lambda: executor_pid(bed, "w") not in (None, first), 10)
    assert bed.state("w")["Running"] and bed.state("idle")["Running"]
    lines = {ln["name"]: ln for ln in bed.timeline(run_dir)}
    assert lines["executor kill"]["outcome"] == "ok", lines
    assert lines["executor kill"]["call"][-1].endswith(f"SIGKILL to pid {first}")
    assert lines["no executor here"]["outcome"].startswith("failed: "), lines
    intents = [r for r in bed.journal(run_dir) if r.get("undo")]
    assert {r["undo"]["op"] for r in intents} == {"executor-relaunch"}
    time.sleep(0.5)
    assert bed.cli("restore", "--run-dir", str(run_dir)).returncode == 0


def test_the_pumba_executor_refuses_kill_executor(bed) -> None:
    bed.service("w", command=WORKER)
    path = bed.scenario("faults:\n  - {kind: kill-executor, target: w, at: 0s}\n")
    fake = bed.tmp / "pumba"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    out = bed.cli("run", "--scenario", str(path), "--executor", "pumba", "--pumba-bin", str(fake))
    assert out.returncode == 2, out
    assert out.stderr.strip().count("\n") == 0 and "Pumba acts on whole containers" in out.stderr
