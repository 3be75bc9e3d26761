"""What `tools chaos watch` reads from a run's files: phases, plan, journal, timeline and a growing ledger."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tools.run import meta
from tools.run.clock import now_ms
from tools.run.jsonl import JsonlFile
from tools.run.phases import PhaseLog, read_phases, write_plan
from tools.watch import LedgerTail, RunWatch, plain_line


def _run(tmp_path: Path) -> Path:
    return meta.create_run(
        tmp_path / "r1",
        postgres_dsn="host=127.0.0.1 port=1 dbname=x user=x connect_timeout=1",
        settings={"baseline_seconds": 60, "cooldown_seconds": 45},
    )


def test_ledger_is_read_as_it_grows_torn_line_included(tmp_path: Path) -> None:
    path = tmp_path / "ledger.log"
    t = now_ms()
    head = f"chaosbed-ledger 1 r1\nS {t - 3000} 1 42\nR {t - 3000} 0 999\nA {t - 2000} 0 99 0 0\n"
    path.write_text(head + f"A {t - 1000} 100")  # a line the producer is still writing
    tail = LedgerTail(path)
    tail.poll()
    assert tail.acked == 100
    with path.open("a") as fh:  # the rest of the torn line, then more
        fh.write(f" 299 1 0\nF {t} 300 309 rejected\nI {t} 310 311 timed out\n")
    tail.poll()
    assert (tail.acked, tail.failed, tail.indeterminate) == (300, 10, 2)
    assert tail.acks_per_s(t) == 300 / 5
    assert tail.acked_at(t - 1500) == 100 and tail.acked_at(t) == 300
    assert tail.producing(t)
    with path.open("a") as fh:
        fh.write(f"C {t} 312\n")
    tail.poll()
    assert not tail.producing(t)


def test_phase_current_and_next_fault_from_the_run_files(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    t0 = now_ms() - 30_000
    write_plan(
        run_dir,
        {"phase_ms": 120_000, "faults": [
            {"id": "01-kafka-1", "name": "broker pause", "target": "kafka-1", "at_ms": 10_000},
            {"id": "02-spark", "name": "spark kill", "target": "spark", "at_ms": 20_000},
            {"id": "03-postgres", "name": "postgres stop", "target": "postgres", "at_ms": 50_000},
        ]},
    )  # fmt: skip
    log = PhaseLog(run_dir)
    log.enter("start")
    log.enter("chaos", 120)
    journal = JsonlFile(run_dir / "chaos-journal.jsonl")
    journal.append({"type": "run-start", "run_id": "r1", "pid": 1, "ts_ms": t0})
    for fid, start in (("01-kafka-1", t0 + 10_000), ("02-spark", t0 + 20_000)):
        journal.append({"type": "intent", "fault_id": f"r1/{fid}", "name": fid[3:], "target": fid[3:],
                        "kind": "kill", "start_ms": start})  # fmt: skip
    journal.append({"type": "undone", "fault_id": "r1/01-kafka-1", "outcome": "ok", "end_ms": t0 + 15_000})
    watch = RunWatch(run_dir)
    snap = watch.snapshot()
    assert snap.phase == "chaos" and snap.ended is None
    assert snap.phase_left_s is not None and 118 <= snap.phase_left_s <= 120
    assert snap.left_s is not None and 163 <= snap.left_s <= 165  # + the 45 s cooldown
    assert [c.split(" (")[0] for c in snap.current] == ["02-spark spark on spark"]
    # Planned 50 s after a chaos start 30 s ago.
    assert snap.next_fault is not None and re.fullmatch(
        r"03-postgres postgres stop on postgres in (19|20)s", snap.next_fault
    )
    line = plain_line(snap)
    assert line.startswith("chaos (") and "next: 03-postgres" in line


def test_the_run_ends_when_done_or_when_the_experiment_is_gone(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(child.stdout)  # a process that has exited
    JsonlFile(run_dir / "experiment.jsonl").append({"phase": "chaos", "ts_ms": now_ms(), "pid": pid})
    watch = RunWatch(run_dir)
    assert watch.ended(read_phases(run_dir)) == f"the experiment's process ({pid}) is gone"
    PhaseLog(run_dir).enter("done", exit_code=1)
    assert watch.ended(read_phases(run_dir)) == "experiment done (exit 1)"
    assert watch.snapshot().phase == "done"
