"""`make bench`: ceilings and end-to-end figures of the running pipeline, measured on this machine.

    .venv/bin/python benchmarks/bench.py [--skip-kafka] [--skip-postgres] [--skip-e2e] [--skip-latency]
                                         [--skip-recovery] [--rates 5000,8000] [--step-seconds 60]

Sections (each skippable; results of sections skipped today are kept from today's earlier runs):

1. kafka: the produce ceiling of a bare confluent-kafka loop (benchmarks/bare_produce.py) and chaosbed's
   producer with its ledger (benchmarks/produce_rate.py), acks=all + idempotence, on one scratch topic
   of the live cluster (6 partitions, RF 3, min ISR 2; deleted afterwards); ratio producer / bare loop.
2. postgres: raw idempotent upsert ceiling, spark_job.sink.PostgresSink with synthetic batches.
3. e2e: highest sustained rate: `tools produce` at rates growing 1.6x until one fails, then bisected;
   sustained = the producer kept the rate, consumer lag (Kafka end offsets - sink-committed offsets)
   stayed flat for the measured window, and `tools validate` found no loss. Reports the highest passing
   and the lowest failing rate.
4. latency: p50/p95/p99/max of committed_at - produced_at at each --latency-rates rate, in SQL.
5. recovery: every fault class of scenarios/default.yml injected --recovery-repeats times
   (benchmarks/recovery_plan.py), as one experiment (tools/experiment, the library of `tools experiment
   run`); recovery per fault from tools/recovery.py (the report's own definition), timed from the
   fault's start; worst, p95 and median per class, and the same after the service returned.
6. profiles: each known-unsafe profile's catch rate over --profile-runs runs of the CI scenario, by chaos
   alone (goal: every run fails validation), and the safe profile's clean runs (benchmarks/catch_rate.py).
   Long (each run is a whole CI experiment); leaves the pipeline on the safe profile.
7. soak: scenarios/random.yml for --soak-minutes at --soak-rate with a fixed seed (benchmarks/soak.py):
   zero anomalies, and each container's memory and each table's size at the start and the end.
8. proxies: what Toxiproxy on every client path costs (benchmarks/proxies.py): the same load direct
   (`chaosbed_proxies=false`), proxied, and proxied with 100 ms on every broker path; ratios of the
   end-to-end rate proxied / direct and p99 direct / proxied (target: both >= 0.9).
9. diskfull: recovery after a full disk of one broker (benchmarks/diskfull.py): a `disk fill` with free: 0
   on a broker's capped log dir for --diskfull-seconds, --diskfull-repeats times round robin over the brokers,
   in one experiment; recovery from the fault's start and after the space returned, what the broker did,
   and nothing acknowledged lost.

Needs the safe pipeline (`ansible-playbook playbooks/site.yml`): with Spark on an unsafe profile it
stops at once and says so.

Writes benchmarks/results/<date>.json and .md, and prints the ratio e2e / PostgreSQL ceiling.
Other work on the same cores makes the figures noisy: the results carry the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg2  # noqa: E402
import yaml  # noqa: E402
from confluent_kafka import Consumer, KafkaException, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from benchmarks import catch_rate, diskfull, proxies, recovery_plan, soak  # noqa: E402
from benchmarks.bare_produce import bare_rate  # noqa: E402
from benchmarks.room import make_room  # noqa: E402
from spark_job.sink import PostgresSink, Row  # noqa: E402
from tools import ranges  # noqa: E402
from tools.experiment.experiment import ExperimentSpec, run_experiment, scenario_length_s  # noqa: E402
from tools.ledger import load_ledger  # noqa: E402
from tools.pgconn import connect  # noqa: E402
from tools.recovery import RecoveryParams  # noqa: E402
from tools.report.data import gather  # noqa: E402
from tools.run.clock import ms_from_iso, now_iso, stamp  # noqa: E402
from tools.run.layout import VALIDATION_FILE  # noqa: E402

BOOTSTRAP = "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"
DSN = f"postgresql://chaosbed@127.0.0.1:5432/chaosbed?passfile={REPO}/.secrets/pgpass"
TOPIC = "events"
PY = sys.executable
RESULTS = REPO / "benchmarks" / "results"

# Worst case unless a name says otherwise; ratios are of figures measured in the same run.
TARGETS = {
    "producer_vs_bare": 0.8,
    "e2e_vs_postgres": 0.5,
    "latency_p99_ms": {1000: 400, 20000: 500},
    "broker kill": 3.0,
    "broker pause": 4.0,
    "spark kill": 8.0,
    "postgres stop": 1.0,
}
# Which figure each recovery target judges: from the fault's start, or after the service returned.
RECOVERY_JUDGED = {"postgres stop": "after_heal_s"}


def log(msg: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------------------------------------- kafka


def bench_kafka(count: int) -> dict[str, Any]:
    topic = f"chaosbed-bench-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    fut = admin.create_topics([NewTopic(topic, 6, 3, config={"min.insync.replicas": "2"})])[topic]
    fut.result(timeout=30)
    time.sleep(2)  # leaders elected, metadata propagated
    try:
        bare = bare_rate(BOOTSTRAP, topic, count)
        log(f"  bare loop: {bare['events_per_s']:,} events/s")
        res = subprocess.run(
            [PY, str(REPO / "benchmarks" / "produce_rate.py"), "--count", str(count),
             "--bootstrap-servers", BOOTSTRAP, "--topic", topic],
            cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    finally:
        with contextlib.suppress(Exception):
            admin.delete_topics([topic])[topic].result(timeout=30)
    m = re.search(r"produce_events_per_second=(\d+)", res.stdout)
    if not m:
        raise RuntimeError(f"produce_rate.py failed: {res.stderr.strip()[-500:]}")
    detail = res.stderr.strip().splitlines()[0] if res.stderr.strip() else ""
    rate = int(m.group(1))
    return {"events_per_s": rate, "bare_events_per_s": bare["events_per_s"], "bare": bare,
            "producer_vs_bare": round(rate / bare["events_per_s"], 2) if bare["events_per_s"] else None,
            "count": count, "topic": "scratch (6 partitions, RF 3)", "detail": detail}  # fmt: skip


# ------------------------------------------------------------------------------------------- postgres


def bench_postgres(batches: int, batch_rows: int) -> dict[str, Any]:
    run_id = f"bench-pg-{uuid.uuid4().hex[:8]}"
    query_id = f"bench-pg-{uuid.uuid4().hex[:8]}"
    sink = PostgresSink(DSN, retry_seconds=30)
    now_ms = int(time.time() * 1000)
    times = []
    try:
        for b in range(batches):
            first = b * batch_rows
            rows: list[Row] = [
                (run_id, i, TOPIC, i % 6, i // 6, now_ms) for i in range(first, first + batch_rows)
            ]
            t = time.perf_counter()
            result = sink.write(query_id, b, rows)
            times.append(time.perf_counter() - t)
            if result.inserted != batch_rows:
                raise RuntimeError(f"batch {b}: inserted {result.inserted} of {batch_rows}")
        # One replayed batch: the marker check must skip it.
        t = time.perf_counter()
        replay = sink.write(query_id, 0, rows)
        replay_s = time.perf_counter() - t
    finally:
        sink._drop_connection()
        with contextlib.closing(psycopg2.connect(DSN)) as conn, conn, conn.cursor() as cur:
            cur.execute("DELETE FROM events WHERE run_id = %s", (run_id,))
            cur.execute("DELETE FROM sink_batches WHERE query_id = %s", (query_id,))
    total = batches * batch_rows
    return {
        "rows_per_s": round(total / sum(times)),
        "batches": batches,
        "batch_rows": batch_rows,
        "batch_s_median": round(statistics.median(times), 3),
        "batch_s_max": round(max(times), 3),
        "replay_skipped": replay.replayed,
        "replay_s": round(replay_s, 3),
        "note": "includes building the COPY text in Python (as Spark's foreachBatch does)",
    }


# -------------------------------------------------------------------------------------------- helpers


class LagProbe:
    """Consumer lag of the sink: Kafka end offsets minus the offsets the sink committed, summed."""

    def __init__(self) -> None:
        self.consumer = Consumer(
            {"bootstrap.servers": BOOTSTRAP, "group.id": "chaosbed-bench-probe", "enable.auto.commit": False}
        )
        md = self.consumer.list_topics(TOPIC, timeout=10)
        self.partitions = sorted(md.topics[TOPIC].partitions)
        self.conn = connect(DSN, what="sink")
        self.conn.autocommit = True

    def lag(self) -> int | None:
        """None when a broker cannot answer right now (leadership moving): the sample is skipped."""
        for _ in range(3):
            try:
                return self._lag()
            except KafkaException as exc:
                log(f"  lag probe: {exc}")
                time.sleep(1)
        return None

    def _lag(self) -> int:
        ends = {
            p: self.consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1]
            for p in self.partitions
        }
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT key::int, max((value->>1)::bigint) + 1"
                " FROM sink_batches, jsonb_each(offsets) GROUP BY 1"
            )
            done = dict(cur.fetchall())
            # A batch whose records the job all dropped (not chaosbed events) writes no sink row, but
            # Spark's progress has read past it: without this an idle pipeline looked behind forever.
            cur.execute(
                "SELECT key::int, max(value::bigint) FROM (SELECT end_offsets -> %s AS eo FROM spark_progress"
                " ORDER BY reported_at DESC LIMIT 20) AS recent, jsonb_each_text(eo) GROUP BY 1",
                (TOPIC,),
            )
            for part, end in cur.fetchall():
                done[part] = max(done.get(part, 0), end)
        return sum(max(0, end - done.get(p, 0)) for p, end in ends.items())

    def close(self) -> None:
        self.consumer.close()
        self.conn.close()


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return 0.0
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def produce_cmd(root: Path, run_id: str, rate: float, seconds: float) -> list[str]:
    return [PY, "-m", "tools", "produce", "--run-id", run_id, "--runs-root", str(root),
            "--bootstrap-servers", BOOTSTRAP, "--topic", TOPIC, "--postgres-dsn", DSN,
            "--rate", str(rate), "--duration", str(seconds)]  # fmt: skip


def drain(run_dir: Path, quiet_s: float = 30, timeout_s: float = 300) -> float:
    """Wait until the sink holds as many of the run's rows as were acked, or the count stopped moving
    for quiet_s (a Spark restart or a slow batch on a loaded host can pause it longer than
    `validate --settle 5` waits), or timeout_s. Returns the seconds waited."""
    acked = ranges.total(load_ledger(run_dir).acked())
    run_id = run_dir.name
    t0 = time.monotonic()
    last, since = -1, t0
    with contextlib.closing(connect(DSN, what="sink")) as conn:
        conn.autocommit = True
        while time.monotonic() - t0 < timeout_s:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM events WHERE run_id = %s", (run_id,))
                n = int(cur.fetchone()[0])
            if n >= acked:
                break
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                break
            time.sleep(2)
    return time.monotonic() - t0


def spark_started_at() -> str:
    res = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.StartedAt}}", "chaosbed-spark"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return res.stdout.strip()


def spark_starts(since_epoch: float) -> list[dict[str, float]]:
    """The job's own start-up figures (seconds from its process start to the session and to the running
    query) of every driver start since `since_epoch`, from the container log. A slow Spark recovery
    is then told apart into a slow start and a slow catch-up."""
    res = subprocess.run(
        ["docker", "logs", "--since", f"{since_epoch:.0f}", "chaosbed-spark"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    starts: list[dict[str, float]] = []
    for line in (res.stdout + res.stderr).splitlines():
        if m := re.search(r"Spark session up (\d+(?:\.\d+)?) s after start", line):
            starts.append({"session_s": float(m.group(1))})
        elif (m := re.search(r"query started (\d+(?:\.\d+)?) s after start", line)) and starts:
            starts[-1]["query_s"] = float(m.group(1))
    return starts


# A driver restarted moments ago runs on a cold JIT: its latency is several times a warm driver's
# (benchmarks/README.md).
WARM_DRIVER_S = 60.0
# Seconds of load before the recovery section's chaos phase starts (the experiment's baseline wait).
RECOVERY_WARMUP_S = 20.0
# Seconds of load after it, so the last fault's recovery is measured.
RECOVERY_COOLDOWN_S = 60.0


def docker_epoch(stamp: str) -> float | None:
    """Epoch seconds of a Docker time stamp (RFC 3339, nanoseconds); None when it is not one."""
    try:
        return ms_from_iso(stamp) / 1000
    except ValueError:
        return None


def spark_up_seconds() -> float | None:
    """How long the Spark container has been running; None when Docker does not say."""
    started = docker_epoch(spark_started_at())
    return None if started is None else time.time() - started


def kafka_nodes() -> list[str]:
    """The Kafka containers' service names (kafka-N, and kafka-controller-N when the controllers are
    dedicated), from Docker."""
    res = subprocess.run(
        ["docker", "ps", "-a", "--filter", "name=^chaosbed-kafka", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return sorted(name.removeprefix("chaosbed-") for name in res.stdout.split())


def quorum_leaders(brokers: list[str]) -> list[tuple[float, str]]:
    """(epoch seconds, node) of every KRaft controller election a node won, from the nodes' logs.
    A broker fault on the active controller (combined nodes) also costs an election and a fresh broker
    session on the new controller (2-3 s more, benchmarks/README.md): the bench records which faults
    hit it; with dedicated controllers none does."""
    won: list[tuple[float, str]] = []
    for broker in brokers:
        res = subprocess.run(
            ["docker", "logs", "-t", f"chaosbed-{broker}"], capture_output=True, text=True, check=False
        )
        for line in (res.stdout + res.stderr).splitlines():
            if "[RaftManager" in line and "Completed transition to Leader" in line:
                at = docker_epoch(line.split(" ", 1)[0])
                if at is not None:
                    won.append((at, broker))
    return sorted(won)


def active_controller(won: list[tuple[float, str]], at: float) -> str | None:
    before = [broker for t, broker in won if t <= at]
    return before[-1] if before else None


def pipeline_ready() -> str | None:
    """None when the Spark job runs the safe profile, reported progress in the last 15 s and has no
    backlog; else why not. Checked before a step: it must start from a steady pipeline."""
    why = spark_profile_problem()
    if why is not None:
        return why
    probe = LagProbe()
    try:
        lag = probe.lag()
    finally:
        probe.close()
    if lag is None or lag > 20_000:
        return f"the sink is catching up a backlog (consumer lag {lag})"
    return None


def spark_profile_problem() -> str | None:
    """Why the Spark job's measurements would not be the safe pipeline's, or None.

    Other engineers switch the shared pipeline to unsafe profiles (append sink, failpoints, no
    checkpoint): a measurement then says nothing about the safe pipeline. Checked after a step too,
    where a backlog is the step's own result (an overloaded rate), not a disturbance."""
    res = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}} {{json .Config.Env}}", "chaosbed-spark"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if res.returncode != 0:
        return "no chaosbed-spark container"
    running, env_json = res.stdout.strip().split(" ", 1)
    if running != "true":
        return "chaosbed-spark is not running"
    env = dict(e.split("=", 1) for e in json.loads(env_json) if "=" in e)
    if env.get("CHAOSBED_SINK_MODE", "upsert") != "upsert" or env.get("CHAOSBED_FAILPOINT"):
        return f"Spark runs an unsafe profile (sink {env.get('CHAOSBED_SINK_MODE')}, failpoint set)"
    if env.get("CHAOSBED_RESET_CHECKPOINT", "false").lower() == "true":
        return "Spark runs an unsafe profile (checkpoint reset)"
    with contextlib.closing(connect(DSN, what="sink")) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM spark_progress WHERE reported_at > now() - interval '15 seconds'")
        if not cur.fetchone()[0]:
            return "the streaming query reported no progress in the last 15 s"
    return None


def wait_ready(timeout_s: float) -> None:
    t0 = time.monotonic()
    while (why := pipeline_ready()) is not None:
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"pipeline not ready after {timeout_s:.0f}s: {why}")
        log(f"waiting for the pipeline: {why}")
        time.sleep(15)


def validate(run_dir: Path, settle_timeout: float = 300) -> dict[str, Any]:
    drain(run_dir, timeout_s=settle_timeout)
    res = subprocess.run(
        [PY, "-m", "tools", "validate", str(run_dir), "--json", "--settle", "5",
         "--settle-timeout", str(settle_timeout)],
        cwd=REPO, capture_output=True, text=True, timeout=settle_timeout + 300, check=False,
    )  # fmt: skip
    if res.returncode not in (0, 1):
        raise RuntimeError(f"tools validate failed ({res.returncode}): {res.stderr.strip()[-300:]}")
    data: dict[str, Any] = json.loads(res.stdout)
    return data


def produced_rate(run_dir: Path) -> tuple[int, float]:
    """(acked events, acked events per second over the producing session)."""
    state = load_ledger(run_dir)
    acked = ranges.total(state.acked())
    if not state.acks or not state.sessions:
        return acked, 0.0
    span = (max(a.ts_ms for a in state.acks) - min(s.start_ms for s in state.sessions)) / 1000
    return acked, acked / span if span > 0 else 0.0


@contextlib.contextmanager
def bench_root(keep: bool) -> Iterator[Path]:
    if keep:
        root = REPO / "runs" / f"bench-{stamp()}"
        root.mkdir(parents=True, exist_ok=True)
        yield root
    else:
        with tempfile.TemporaryDirectory(prefix="chaosbed-bench-") as tmp:
            yield Path(tmp)


# ------------------------------------------------------------------------------------------------ e2e


def e2e_step(root: Path, rate: int, warmup: float, window: float, probe: LagProbe) -> dict[str, Any]:
    run_id = f"bench-e2e-{rate}-{uuid.uuid4().hex[:6]}"
    out = (root / f"{run_id}.log").open("w")
    wait_ready(600)
    spark_before = spark_started_at()
    make_room(DSN, log)
    proc = subprocess.Popen(
        produce_cmd(root, run_id, rate, warmup + window), cwd=REPO, stdout=out, stderr=out
    )
    t0 = time.monotonic()
    samples: list[tuple[float, float]] = []
    try:
        while proc.poll() is None and time.monotonic() - t0 < warmup + window + 60:
            time.sleep(3)
            lag = probe.lag()
            if lag is not None:
                samples.append((time.monotonic() - t0, float(lag)))
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=60)
        out.close()
    measured = [(t, lag) for t, lag in samples if warmup <= t <= warmup + window]
    acked, achieved = produced_rate(root / run_id)
    lag_slope = slope(measured)
    tail = [lag for t, lag in measured if t >= warmup + window * 2 / 3]
    tail_lag = statistics.fmean(tail) if tail else float("nan")
    log(f"  rate {rate}/s: produced {achieved:.0f}/s, slope {lag_slope:+.0f} ev/s, tail lag {tail_lag:.0f}")
    disturbed = spark_started_at() != spark_before or spark_profile_problem() is not None
    t = time.monotonic()
    v = validate(root / run_id)
    drain_s = time.monotonic() - t
    keeps_rate = achieved >= 0.95 * rate
    flat = lag_slope <= 0.05 * rate and tail_lag <= 10 * rate
    lossless = v["missing_count"] == 0 and v["duplicate_count"] == 0 and v["extra_count"] == 0
    return {
        "rate": rate,
        "run_id": run_id,
        "produced_eps": round(achieved),
        "acked": acked,
        "lag_slope_eps": round(lag_slope, 1),
        "lag_tail_mean": round(tail_lag),
        "lag_max": round(max((lag for _, lag in measured), default=0)),
        "lag_samples": [[round(t, 1), int(lag)] for t, lag in samples],
        "drain_and_validate_s": round(drain_s, 1),
        "missing": v["missing_count"],
        "duplicate": v["duplicate_count"],
        "extra": v["extra_count"],
        "producer_kept_rate": keeps_rate,
        "lag_flat": flat,
        "sustained": keeps_rate and flat and lossless,
        "disturbed": disturbed,
        "loadavg": loadavg(),
    }


def bench_e2e(
    root: Path, rates: list[int] | None, warmup: float, window: float, max_steps: int
) -> dict[str, Any]:
    probe = LagProbe()
    steps: list[dict[str, Any]] = []
    try:
        best, worst_fail = 0, None
        queue = list(rates) if rates else [5000]
        while queue and len(steps) < max_steps:
            rate = queue.pop(0)
            log(f"e2e step {len(steps) + 1}: {rate}/s for {warmup:.0f}+{window:.0f}s")
            step = e2e_step(root, rate, warmup, window, probe)
            steps.append(step)
            if step["disturbed"]:
                # Someone else restarted Spark during the step: it says nothing about the rate; retry once.
                log("  Spark was restarted or switched to an unsafe profile during the step: step retried")
                if sum(1 for s in steps if s["rate"] == rate) < 2:
                    queue.insert(0, rate)
                continue
            if step["sustained"] and not step["disturbed"]:
                best = max(best, rate)
            else:
                worst_fail = rate if worst_fail is None else min(worst_fail, rate)
            if rates:
                continue
            # Adaptive: grow by 1.6x until a rate fails (no ceiling assumed), then bisect between the
            # best and the lowest failure until they are within 15 %.
            if worst_fail is None:
                nxt = int(rate * 1.6)
            else:
                lo = best or worst_fail // 3
                nxt = (lo + worst_fail) // 2
                if worst_fail / max(lo, 1) < 1.15:
                    nxt = 0
            nxt = round(nxt, -2)
            if nxt > 0 and all(s["rate"] != nxt for s in steps):
                queue.append(nxt)
    finally:
        probe.close()
    return {
        "sustained_eps": best,
        "search_complete": any(not s["sustained"] and not s["disturbed"] for s in steps),
        "first_failed_eps": min(
            (s["rate"] for s in steps if not s["sustained"] and not s["disturbed"]), default=None
        ),
        "warmup_s": warmup,
        "window_s": window,
        "criterion": "producer >= 95% of the rate; lag slope <= 5% of the rate and mean lag over the last "
        "third of the window <= 10 s of events; validate: 0 missing, 0 duplicate, 0 extra",
        "steps": steps,
    }


# -------------------------------------------------------------------------------------------- latency


def wait_warm_driver(section: str) -> float | None:
    """Wait until the Spark driver has run WARM_DRIVER_S; returns its uptime then."""
    up = spark_up_seconds()
    if up is not None and up < WARM_DRIVER_S:
        log(f"{section}: the Spark driver started {up:.0f} s ago; waiting until it ran {WARM_DRIVER_S:.0f} s")
        time.sleep(WARM_DRIVER_S - up)
        up = spark_up_seconds()
    return up


def bench_latency(root: Path, rate: int, seconds: float, warmup: float) -> dict[str, Any]:
    run_id = f"bench-lat-{rate}-{uuid.uuid4().hex[:6]}"
    wait_ready(600)
    up = wait_warm_driver("latency")
    spark_before = spark_started_at()
    make_room(DSN, log)
    with (root / f"{run_id}.log").open("w") as out:
        subprocess.run(
            produce_cmd(root, run_id, rate, warmup + seconds),
            cwd=REPO, stdout=out, stderr=out, timeout=warmup + seconds + 120, check=True,
        )  # fmt: skip
    disturbed = spark_started_at() != spark_before or spark_profile_problem() is not None
    v = validate(root / run_id)
    state = load_ledger(root / run_id)
    start_ms = min(s.start_ms for s in state.sessions) + int(warmup * 1000)
    with contextlib.closing(connect(DSN, what="sink")) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT count(*), percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY lat), max(lat)
               FROM (SELECT extract(epoch FROM committed_at - produced_at) * 1000 AS lat
                       FROM events WHERE run_id = %s AND produced_at >= to_timestamp(%s / 1000.0)) t""",
            (run_id, start_ms),
        )
        n, pct, mx = cur.fetchone()
    return {
        "rate": rate,
        "seconds": seconds,
        "warmup_excluded_s": warmup,
        "spark_up_s": None if up is None else round(up),
        "disturbed": disturbed,
        "run_id": run_id,
        "rows": int(n),
        "p50_ms": round(pct[0], 1),
        "p95_ms": round(pct[1], 1),
        "p99_ms": round(pct[2], 1),
        "max_ms": round(float(mx), 1),
        "missing": v["missing_count"],
        "duplicate": v["duplicate_count"],
        "loadavg": loadavg(),
    }


# ------------------------------------------------------------------------------------------- recovery


def spread(values: list[float]) -> dict[str, float | None]:
    """Worst, p95 and median of a fault class's recoveries (p95 by linear interpolation)."""
    if not values:
        return {"worst": None, "p95": None, "median": None}
    ordered = sorted(values)
    pos = 0.95 * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    p95 = ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
    return {"worst": ordered[-1], "p95": round(p95, 2), "median": statistics.median(ordered)}


def bench_recovery(root: Path, scenario: Path, rate: int) -> dict[str, Any]:
    run_dir = root / f"bench-rec-{uuid.uuid4().hex[:6]}"
    run_id = run_dir.name
    wait_ready(600)
    wait_warm_driver("recovery")
    span = scenario_length_s(str(scenario))
    log(f"recovery: an experiment at {rate}/s with {scenario.name} ({span:.0f}s of faults)")
    # The recovery baseline is the 60 s before the first fault: keep a new run's first seconds (its
    # first micro-batches commit ids up to ~6 s old, benchmarks/README.md) out of it, or every threshold
    # doubles. The scenario's first fault comes 65 s into the chaos phase.
    spec = ExperimentSpec(
        scenario=str(scenario),
        bootstrap_servers=BOOTSTRAP,
        postgres_dsn=DSN,
        topic=TOPIC,
        rate=rate,
        baseline_s=RECOVERY_WARMUP_S,
        cooldown_s=RECOVERY_COOLDOWN_S,
        # A Spark restart or a slow batch on a loaded host can pause the sink longer than a few seconds.
        settle_s=30,
        settle_timeout_s=300,
        run_dir=run_dir,
        render_report=False,
    )
    began = time.time()
    experiment = run_experiment(spec)
    if experiment.validate_exit not in (0, 1):
        raise RuntimeError(f"recovery: validation did not run (exit {experiment.exit_code})")
    v = json.loads((run_dir / VALIDATION_FILE).read_text())
    params = RecoveryParams()
    with contextlib.closing(connect(DSN, what="sink")) as conn:
        data = gather(run_dir, conn, params)
    outcomes = {f.window.fault_id: (f.outcome, f.applied) for f in data.faults}
    won = quorum_leaders(kafka_nodes())
    faults = []
    for r in data.recoveries:
        outcome, applied = outcomes.get(r.fault.fault_id, ("", True))
        is_broker = r.fault.target.startswith("kafka")
        controller = active_controller(won, r.fault.start_ms / 1000) if is_broker else None
        faults.append(
            {
                "fault_id": r.fault.fault_id,
                "class": recovery_plan.fault_class(r.fault.kind, r.fault.target),
                "outcome": outcome,
                "applied": applied,
                "active_controller": None if controller is None else controller == r.fault.target,
                "recovery_s": r.recovery_s,
                "after_heal_s": r.after_heal_s,
                "fault_s": None if r.fault.end_ms is None else (r.fault.end_ms - r.fault.start_ms) / 1000,
                "peak_p99_ms": None if r.peak_p99_ms is None else round(r.peak_p99_ms),
            }
        )
    classes: dict[str, dict[str, Any]] = {}
    for name in sorted({f["class"] for f in faults}):
        # A fault that failed (e.g. Docker could not pause) may not have happened: not in the figures.
        items = [f for f in faults if f["class"] == name and f["applied"]]
        rec = [f["recovery_s"] for f in items if f["recovery_s"] is not None]
        heal = [f["after_heal_s"] for f in items if f["after_heal_s"] is not None]
        # A fault that never recovered makes the worst case unknown: no figure rather than a flattering one.
        classes[name] = {
            "faults": len(items),
            "recovered": len(rec),
            "recovery": spread(rec) if len(rec) == len(items) else spread([]),
            "after_heal": spread(heal) if len(heal) == len(items) else spread([]),
            "recovery_s": rec,
            "after_heal_s": heal,
            "not_applied": sum(f["class"] == name and not f["applied"] for f in faults),
            "on_active_controller": [f["active_controller"] for f in items],
        }
    return {
        "rate": rate,
        "scenario": str(scenario.relative_to(REPO)) if scenario.is_relative_to(REPO) else str(scenario),
        "run_id": run_id,
        "chaos_exit": experiment.chaos_exit,
        "baseline_p99_ms": None if data.baseline is None else round(data.baseline.p99_ms),
        "threshold_ms": None if data.baseline is None else round(data.baseline.threshold_ms),
        "definition": params.describe(),
        "missing": v["missing_count"],
        "duplicate": v["duplicate_count"],
        "notes": data.notes,
        "faults": faults,
        "classes": classes,
        "spark_starts": spark_starts(began),
        "loadavg": loadavg(),
    }


# --------------------------------------------------------------------------------------------- output


def _met(value: float | None, target: float, higher_is_better: bool) -> str:
    if value is None:
        return "not measured / did not recover"
    ok = value >= target if higher_is_better else value < target
    return "yes" if ok else "**no**"


def _latency_rows(lat: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for one in lat.get("by_rate", [lat] if "rate" in lat else []):
        target = TARGETS["latency_p99_ms"].get(one["rate"])
        rows.append(
            (
                f"e2e latency at {one['rate']:,}/s, p50 / p95 / p99 / max",
                " / ".join(f"{one[k]:,.0f}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")) + " ms",
                f"p99 < {target:,} ms" if target else "-",
                _met(one["p99_ms"], target, False) if target else "-",
            )
        )
    return rows


def _after_heal_note(c: dict[str, Any]) -> str:
    """The class's figures after the service returned, never a negative duration (as the report words it)."""
    heal = c["after_heal"]
    if heal["worst"] is None:
        return ""
    early = sum(1 for x in c["after_heal_s"] if x <= 0)
    if early == len(c["after_heal_s"]):
        return "; every one recovered before the service returned"
    note = f"; after the service returned: worst {heal['worst']:g} s, median {max(heal['median'], 0):g} s"
    return note + (f" ({early} recovered before it returned)" if early else "")


def _recovery_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, c in r["classes"].items():
        if "recovery" not in c:  # a result of the median-only bench
            continue
        judged = RECOVERY_JUDGED.get(name, "recovery_s")
        figure = c["recovery"] if judged == "recovery_s" else c["after_heal"]
        frm = "from the fault's start" if judged == "recovery_s" else "after the service returned"
        each = ", ".join(f"{x:g}" for x in c[judged])
        if figure["worst"] is None:
            value = f"{c['recovered']}/{c['faults']} recovered (each: {each})"
        else:
            value = (
                f"worst {figure['worst']:g} s, p95 {figure['p95']:g} s, median {figure['median']:g} s "
                f"{frm} (each: {each})"
            )
            value += _after_heal_note(c) if judged == "recovery_s" else ""
        if c.get("not_applied"):
            value += f"; {c['not_applied']} more failed to apply, not counted"
        target = TARGETS.get(name)
        rows.append(
            (
                f"recovery, {name} ({c['faults']} injections)",
                value,
                f"< {target:g} s, every injection" if isinstance(target, float) else "-",
                _met(figure["worst"], target, False) if isinstance(target, float) else "-",
            )
        )
    return rows


def table_rows(res: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    k = res.get("kafka")
    if k and "bare_events_per_s" in k:
        rows.append(
            (
                "bare confluent-kafka loop, acks=all + idempotence (ceiling)",
                f"{k['bare_events_per_s']:,} events/s",
                "-",
                "-",
            )
        )
        rows.append(
            (
                "chaosbed producer (ledger) / bare loop",
                f"{k['events_per_s']:,} / {k['bare_events_per_s']:,} = {k['producer_vs_bare']:.2f}",
                f">= {TARGETS['producer_vs_bare']}",
                _met(k["producer_vs_bare"], TARGETS["producer_vs_bare"], True),
            )
        )
    p = res.get("postgres")
    if p:
        rows.append(
            (
                "PostgreSQL COPY + idempotent upsert (ceiling)",
                f"{p['rows_per_s']:,} rows/s ({p['batch_rows']:,}-row batches)",
                "-",
                "-",
            )
        )
    e = res.get("e2e")
    if e:
        v = e["sustained_eps"]
        fail = e.get("first_failed_eps")
        extra = f"; lowest failing {fail:,}/s" if fail else "; no failing rate found (search incomplete)"
        rows.append(("max sustained end-to-end rate", f"highest passing {v:,} events/s{extra}", "-", "-"))
        if p and v:
            ratio = v / p["rows_per_s"]
            rows.append(
                (
                    "end-to-end / PostgreSQL ceiling",
                    f"{ratio:.2f}",
                    f">= {TARGETS['e2e_vs_postgres']}",
                    _met(ratio, TARGETS["e2e_vs_postgres"], True),
                )
            )
    if res.get("latency"):
        rows += _latency_rows(res["latency"])
    if res.get("recovery"):
        rows += _recovery_rows(res["recovery"])
    if res.get("profiles"):
        rows += catch_rate.table_rows(res["profiles"])
    if res.get("proxies"):
        rows += proxies.table_rows(res["proxies"])
    if res.get("diskfull"):
        rows += _recovery_rows(res["diskfull"]) + diskfull.table_rows(res["diskfull"])
    soak_res = res.get("soak")
    if soak_res:
        anomalies = sum(soak_res.get(key) or 0 for key in ("missing", "duplicate", "extra"))
        grown = max(soak_res["memory_bytes"].items(), key=lambda kv: kv[1]["growth"], default=None)
        detail = f"; most memory growth: {grown[0]} {grown[1]['growth'] / 2**20:+.0f} MiB" if grown else ""
        rows.append(
            (
                f"soak: random.yml {soak_res['minutes']:g} min at {soak_res['rate']:,}/s,"
                f" seed {soak_res['seed']}",
                f"{anomalies} anomalies{detail}",
                "0 anomalies",
                _met(-anomalies, 0, True),
            )
        )
    return rows


def write_results(res: dict[str, Any], day: str) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    jpath, mpath = RESULTS / f"{day}.json", RESULTS / f"{day}.md"
    jpath.write_text(json.dumps(res, indent=2) + "\n")
    lines = [
        f"# chaosbed benchmark, {day}",
        "",
        f"Machine: {res['machine']['cores']} cores, {res['machine']['memory_gb']} GB; Spark settings: "
        f"{res.get('settings', {})}. Other work may have been running on the same cores (load average "
        "per section in the JSON). Generated by `make bench` (benchmarks/bench.py).",
        "",
        "| figure | measured | target | met? |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in table_rows(res)],
        "",
        "Measured at: "
        + ", ".join(
            f"{k} {v['measured_at']}" for k, v in res.items() if isinstance(v, dict) and "measured_at" in v
        ),
        "",
    ]
    mpath.write_text("\n".join(lines))
    return jpath, mpath


def machine() -> dict[str, Any]:
    mem = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return {"cores": os.cpu_count(), "memory_gb": round(mem, 1)}


def spark_settings() -> dict[str, str]:
    """The running Spark container's job settings (its environment), without the DSN."""
    res = subprocess.run(
        ["docker", "inspect", "-f", "{{json .Config.Env}}", "chaosbed-spark"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if res.returncode != 0:
        return {}
    keep = (
        "MAX_OFFSETS",
        "TRIGGER",
        "MASTER",
        "DRIVER_MEMORY",
        "POLL_TIMEOUT",
        "FETCH_OFFSET",
        "KAFKA_PROPERTIES",
        "KAFKA_OPTIONS",
        "SINK_MODE",
    )
    env = [e.split("=", 1) for e in json.loads(res.stdout)]
    return {k.removeprefix("CHAOSBED_"): v for k, v in env if any(x in k for x in keep)}


def add_measurement_arguments(ap: argparse.ArgumentParser) -> None:
    """The e2e, latency and recovery options (also benchmarks/deployments.py's, per deployment)."""
    ap.add_argument("--rates", help="comma-separated e2e rates (default: adaptive search from 5000)")
    ap.add_argument("--max-steps", type=int, default=10)
    ap.add_argument("--warmup", type=float, default=15)
    ap.add_argument("--step-seconds", type=float, default=60)
    ap.add_argument("--latency-rates", default="1000,20000", help="comma-separated rates (latency)")
    ap.add_argument("--latency-seconds", type=float, default=60)
    ap.add_argument("--recovery-rate", type=int, default=1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in (
        "kafka",
        "postgres",
        "e2e",
        "latency",
        "recovery",
        "profiles",
        "soak",
        "proxies",
        "diskfull",
    ):
        ap.add_argument(f"--skip-{name}", action="store_true")
    ap.add_argument("--kafka-count", type=int, default=1_000_000)
    ap.add_argument("--pg-batches", type=int, default=10)
    ap.add_argument("--pg-batch-rows", type=int, default=20_000)
    add_measurement_arguments(ap)
    ap.add_argument(
        "--recovery-source",
        type=Path,
        default=REPO / "scenarios" / "default.yml",
        help="the scenario whose fault classes the recovery section injects",
    )
    ap.add_argument("--scenario", type=Path, help="recovery: run this scenario instead (a probe)")
    ap.add_argument("--recovery-repeats", type=int, default=5, help="injections per fault class (recovery)")
    ap.add_argument("--soak-minutes", type=float, default=60)
    ap.add_argument("--soak-rate", type=int, default=5000)
    ap.add_argument("--soak-seed", type=int, default=7)
    ap.add_argument("--profile-runs", type=int, default=5, help="CI experiments per profile (profiles)")
    ap.add_argument(
        "--profiles",
        default=",".join(catch_rate.PROFILES),
        help="comma-separated pipeline profiles the profiles section measures, in this order",
    )
    ap.add_argument("--proxies-rate", type=int, default=5000, help="events/s of each proxies run")
    ap.add_argument("--proxies-seconds", type=float, default=60, help="measured seconds of each proxies run")
    ap.add_argument("--diskfull-seconds", type=float, default=60, help="how long each broker disk is full")
    ap.add_argument("--diskfull-repeats", type=int, default=3, help="full disks, one broker at a time")
    ap.add_argument("--keep-runs", action="store_true", help="keep run dirs under runs/bench-<time>/")
    ap.add_argument("--fresh", action="store_true", help="do not merge into today's earlier results")
    args = ap.parse_args()
    profiles = tuple(p for p in args.profiles.split(",") if p)
    unknown = sorted(set(profiles) - set(catch_rate.PROFILES))
    if unknown or not profiles:
        known, bad = ", ".join(catch_rate.PROFILES), ", ".join(unknown) or "(none given)"
        print(f"error: --profiles: unknown {bad}; known: {known}", file=sys.stderr)
        raise SystemExit(2)

    # What waiting cannot fix (a profile someone else left, a pipeline that is down): say what to run.
    why = spark_profile_problem()
    if why is not None and ("unsafe profile" in why or "chaosbed-spark" in why):
        print(f"error: {why}: provision the safe pipeline first (make up)", file=sys.stderr)
        raise SystemExit(2)

    day = datetime.now().strftime("%Y-%m-%d")
    jpath = RESULTS / f"{day}.json"
    res: dict[str, Any] = {}
    if jpath.exists() and not args.fresh:
        res = json.loads(jpath.read_text())
    res["machine"] = machine()
    res["settings"] = spark_settings()

    def stamp(section: dict[str, Any]) -> dict[str, Any]:
        section["measured_at"] = now_iso()
        section.setdefault("loadavg", loadavg())
        section["spark_settings"] = res["settings"]
        return section

    with bench_root(args.keep_runs) as root:
        if not args.skip_postgres:
            log(f"postgres ceiling: {args.pg_batches} x {args.pg_batch_rows} rows")
            res["postgres"] = stamp(bench_postgres(args.pg_batches, args.pg_batch_rows))
            log(f"  {res['postgres']['rows_per_s']:,} rows/s")
            write_results(res, day)
        if not args.skip_kafka:
            log(f"kafka ceiling: {args.kafka_count:,} events, acks=all, idempotent")
            res["kafka"] = stamp(bench_kafka(args.kafka_count))
            log(f"  {res['kafka']['events_per_s']:,} events/s")
            write_results(res, day)
        if not args.skip_e2e:
            rates = [int(r) for r in args.rates.split(",")] if args.rates else None
            res["e2e"] = stamp(bench_e2e(root, rates, args.warmup, args.step_seconds, args.max_steps))
            write_results(res, day)
        if not args.skip_latency:
            by_rate = []
            for rate in (int(r) for r in args.latency_rates.split(",")):
                log(f"latency: {rate}/s for {args.latency_seconds:.0f}s (+{args.warmup:.0f}s warmup)")
                by_rate.append(stamp(bench_latency(root, rate, args.latency_seconds, args.warmup)))
            res["latency"] = stamp({"by_rate": by_rate})
            write_results(res, day)
        if not args.skip_recovery:
            scenario = args.scenario.resolve() if args.scenario else root / "recovery.yml"
            if not args.scenario:
                plan = recovery_plan.recovery_scenario(
                    yaml.safe_load(args.recovery_source.read_text()), args.recovery_repeats, gap_s=45
                )
                scenario.write_text(yaml.safe_dump(plan, sort_keys=False))
            res["recovery"] = stamp(bench_recovery(root, scenario, args.recovery_rate))
            res["recovery"]["source"] = str(args.scenario or args.recovery_source)
            write_results(res, day)
        if not args.skip_profiles:
            res["profiles"] = stamp(catch_rate.catch_rates(args.profile_runs, DSN, profiles=profiles))
            write_results(res, day)
        if not args.skip_soak:
            wait_ready(600)
            log(
                f"soak: scenarios/random.yml, {args.soak_minutes:g} min at {args.soak_rate}/s,"
                f" seed {args.soak_seed}"
            )
            res["soak"] = stamp(
                soak.bench_soak(
                    root / f"bench-soak-{uuid.uuid4().hex[:6]}",
                    BOOTSTRAP,
                    DSN,
                    args.soak_minutes,
                    args.soak_rate,
                    args.soak_seed,
                )
            )
            write_results(res, day)
        if not args.skip_proxies:
            log(f"proxies: direct, proxied and 100 ms on every broker path, {args.proxies_rate}/s")
            res["proxies"] = stamp(
                proxies.bench_proxies(
                    DSN, root, args.proxies_rate, args.proxies_seconds, args.warmup, log, wait_ready
                )
            )
            write_results(res, day)
        if not args.skip_diskfull:
            scenario = root / "diskfull.yml"
            plan = diskfull.scenario(args.diskfull_seconds, args.diskfull_repeats)
            scenario.write_text(yaml.safe_dump(plan, sort_keys=False))
            times = f"{args.diskfull_seconds:g} s, {args.diskfull_repeats} times"
            log(f"diskfull: a broker's log dir full for {times}")
            section = bench_recovery(root, scenario, args.recovery_rate)
            section["seconds"] = args.diskfull_seconds
            section["observed"] = diskfull.observed(root / section["run_id"])
            res["diskfull"] = stamp(section)
            write_results(res, day)
    jp, mp = write_results(res, day)
    print(mp.read_text())
    e, p = res.get("e2e"), res.get("postgres")
    if e and p and e["sustained_eps"]:
        print(f"end-to-end / PostgreSQL ceiling = {e['sustained_eps']:,} / {p['rows_per_s']:,} "
              f"= {e['sustained_eps'] / p['rows_per_s']:.2f}")  # fmt: skip
    print(f"results: {jp.relative_to(REPO)}, {mp.relative_to(REPO)}")


if __name__ == "__main__":
    main()
