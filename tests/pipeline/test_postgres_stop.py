"""A chaos `stop` of the pipeline's PostgreSQL is a clean stop: the container's Pumba stop-signal label makes
it a fast shutdown (the sink's open connections would hold a SIGTERM "smart" shutdown until the SIGKILL),
so the server comes back without crash recovery and the sink carries on."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

from .conftest import ROOT, Pipeline

SCENARIO = """
name: postgres-stop
faults:
  - {name: postgres stop, kind: stop, target: postgres, at: 0s, time: 5, restart: true, duration: 2s}
"""


def test_stop_fault_is_a_fast_shutdown_without_crash_recovery(pipeline: Pipeline, tmp_path: Path) -> None:
    container = pipeline.container("postgres")
    assert container.labels.get("com.gaiaadm.pumba.stop-signal") == "SIGINT"
    scenario = tmp_path / "postgres-stop.yml"
    scenario.write_text(SCENARIO)
    since = int(time.time()) - 1
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "tools", "chaos", "run", "-s", str(scenario), "--run-dir", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = [json.loads(x) for x in (run_dir / "timeline.jsonl").read_text().splitlines()]
    assert line["outcome"] == "ok", line
    assert any("signal=SIGINT" in call for call in line["call"]), line["call"]
    assert not any("not stopped" in call for call in line["call"]), "needed the SIGKILL fallback"

    deadline = time.monotonic() + 60
    while True:
        try:
            with contextlib.closing(pipeline.connect()) as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    log = container.logs(since=since).decode(errors="replace")
    assert "received fast shutdown request" in log
    assert "database system is shut down" in log
    assert "not properly shut down" not in log and "automatic recovery in progress" not in log
