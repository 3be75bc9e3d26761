"""The job on Spark's standalone cluster (spark_deploy: standalone), as CI's chaos run left it
(conftest.standalone_ci_run provisions it; the default comes back after the package).

The application has one executor on each of the two workers; an executor JVM killed while batches run
is relaunched by its worker, its tasks run again, and every event is still committed exactly once; a
restarted master (recovery from its volume) keeps the application and its workers.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from .conftest import BIN, ROOT, Pipeline, PlaybookRun
from .test_pipeline import produce, wait_for_rows

MASTER_UI = "http://127.0.0.1:8080/json/"
WORKER_UIS = {
    "spark-worker-1": "http://127.0.0.1:8081/json/",
    "spark-worker-2": "http://127.0.0.1:8082/json/",
}


def status(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


def wait_for(what: str, check: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:  # the UI is not up (yet)
            last = exc
        else:
            if last:
                return last
        time.sleep(1)
    pytest.fail(f"{what}: not within {timeout:.0f} s (last: {last!r})")


def running_app() -> dict[str, Any] | None:
    apps = [a for a in status(MASTER_UI).get("activeapps", []) if a.get("state") == "RUNNING"]
    return apps[0] if len(apps) == 1 else None


def executors() -> dict[str, list[dict[str, Any]]]:
    """Each worker's running executors, from its own status page."""
    return {w: status(url).get("executors", []) for w, url in WORKER_UIS.items()}


def one_executor_each() -> dict[str, list[dict[str, Any]]] | None:
    found = executors()
    return found if all(len(e) == 1 for e in found.values()) else None


@pytest.fixture(scope="module")
def cluster(pipeline: Pipeline, standalone_ci_run: PlaybookRun) -> Pipeline:
    code, stdout, _run = standalone_ci_run
    assert code == 0, stdout[-4000:]
    return pipeline


def test_the_application_has_two_executors_on_two_workers(cluster: Pipeline) -> None:
    master = status(MASTER_UI)
    alive = sorted(w["host"] for w in master["workers"] if w["state"] == "ALIVE")
    assert alive == ["spark-worker-1", "spark-worker-2"]
    app = wait_for("the streaming application", running_app)
    assert app["cores"] == 2
    found = wait_for("one executor on each worker", one_executor_each)
    assert {e[0]["appid"] for e in found.values()} == {app["id"]}
    run_id = f"test-cluster-{uuid.uuid4().hex[:8]}"
    assert produce(cluster, run_id, range(2000)) == 2000
    assert wait_for_rows(cluster, run_id, 2000) == (2000, 2000, 1)
    with cluster.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT max(tasks) FROM sink_batch_reads WHERE committed_at > now() - interval '5 min'")
        assert cur.fetchone()[0] > 1, "batches were staged by several tasks"


def kill_executor(worker: str, tmp_path: Path) -> dict[str, Any]:
    """The `kill-executor` fault on `worker` through `tools chaos run` (the docker executor); its
    timeline line."""
    scenario = tmp_path / "kill-executor.yml"
    scenario.write_text(f"faults:\n  - {{kind: kill-executor, target: {worker}, at: 0s}}\n")
    run_dir = tmp_path / "chaos"
    res = subprocess.run(
        [str(BIN / "tools"), "chaos", "run", "--scenario", str(scenario), "--run-dir", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return json.loads((run_dir / "timeline.jsonl").read_text().splitlines()[0])


def test_an_executor_killed_mid_batch_still_commits_every_event_once(
    cluster: Pipeline, tmp_path: Path
) -> None:
    before = wait_for("one executor on each worker", one_executor_each)
    run_id = f"test-exec-kill-{uuid.uuid4().hex[:8]}"
    total = 30_000
    sent: list[int] = []
    producer = threading.Thread(target=lambda: sent.append(produce_paced(cluster, run_id, total)))
    producer.start()
    try:
        # Batches are running once the run's first rows commit: kill the executor of worker 1 then.
        wait_for("the run's first rows", lambda: wait_for_rows(cluster, run_id, 1, timeout=0)[0] > 0)
        line = kill_executor("spark-worker-1", tmp_path)
        assert line["outcome"] == "ok", line
    finally:
        producer.join()
    assert sent == [total]
    assert wait_for_rows(cluster, run_id, total, timeout=180) == (total, total, 1)
    # The worker launched a new executor for the application.
    after = wait_for("a relaunched executor", one_executor_each)
    assert after["spark-worker-1"][0]["id"] != before["spark-worker-1"][0]["id"]
    assert wait_for_rows(cluster, run_id, total + 1, timeout=0)[0] == total


def produce_paced(cluster: Pipeline, run_id: str, total: int, chunks: int = 20) -> int:
    """`total` events in chunks about 0.25 s apart: batches keep running while the executor dies."""
    acked = 0
    step = total // chunks
    for k in range(chunks):
        acked += produce(cluster, run_id, range(k * step, (k + 1) * step))
        time.sleep(0.25)
    return acked


def test_a_master_restart_keeps_the_application_running(cluster: Pipeline) -> None:
    app = wait_for("the streaming application", running_app)
    cluster.container("spark-master").restart(timeout=10)
    # The restarted master recovers the application and its workers from its recovery directory.
    recovered = wait_for("the application after the master restart", running_app, timeout=180)
    assert recovered["id"] == app["id"]
    wait_for(
        "both workers alive",
        lambda: sum(w["state"] == "ALIVE" for w in status(MASTER_UI)["workers"]) == 2,
    )
    run_id = f"test-master-{uuid.uuid4().hex[:8]}"
    assert produce(cluster, run_id, range(1000)) == 1000
    assert wait_for_rows(cluster, run_id, 1000) == (1000, 1000, 1)
    spark = cluster.container("spark")
    spark.reload()
    assert spark.status == "running"
