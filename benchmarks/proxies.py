"""`make bench` section `proxies`: what Toxiproxy on every client path costs, and what 100 ms on every
broker path does to the end-to-end latency.

Three runs of the same load, each a producer container on the pipeline's network (so its path is the
one experiments use) writing `rate` events/s for `seconds`:

1. direct: the pipeline provisioned with `chaosbed_proxies=false` (every client straight to the brokers
   and PostgreSQL);
2. proxied: provisioned as the inventory says (proxies on), no toxic;
3. 100 ms: proxied, with a `proxy latency` of 100 ms (downstream) on every broker's inbound paths
   (producer, Spark and replication), applied by `tools chaos run` for the whole run.

Per run: the end-to-end rate (rows committed / time from the first event produced to the last row
committed) and p50/p95/p99/max of committed_at - produced_at after the warm-up, in SQL. Ratios: rate
proxied / direct and p99 direct / proxied (target: both >= 0.9). Leaves the pipeline provisioned as the
inventory says.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import docker

from benchmarks.room import make_room
from tools.ledger import load_ledger
from tools.pgconn import connect

REPO = Path(__file__).resolve().parents[1]
PLAYBOOK = [str(REPO / ".venv" / "bin" / "ansible-playbook"), str(REPO / "playbooks" / "site.yml")]
# The producer's image is the one provisioning gave the pipeline's producer container.
PRODUCER_CONTAINER = "chaosbed-producer"
NETWORK = "chaosbed"
BROKERS = ("kafka-1", "kafka-2", "kafka-3")
# The bootstrap lists of the producer's path, as playbooks/group_vars/all/chaosbed.yml builds them.
DIRECT = ",".join(f"{b}:19092" for b in BROKERS)
PROXIED = ",".join(f"toxiproxy:{22000 + n}" for n in (1, 2, 3))
TARGET_RATIO = 0.9
LATENCY_SCENARIO = "name: bench-proxy-latency\nfaults:\n" + "".join(
    f"  - {{kind: proxy latency, target: {b}, at: 0s, duration: {{seconds}}s, latency: 100}}\n"
    for b in BROKERS
)


def provision(proxies: bool, log: Any) -> None:
    args = [] if proxies else ["-e", "chaosbed_proxies=false"]
    log(f"proxies: provisioning with proxies {'on' if proxies else 'off'}")
    result = subprocess.run([*PLAYBOOK, *args], cwd=REPO, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"site.yml failed: {result.stdout[-2000:]}")


def produce_in_network(root: Path, run_id: str, bootstrap: str, rate: int, seconds: float) -> None:
    """`tools produce` in a producer container on the pipeline's network (the project's code mounted)."""
    client = docker.from_env(timeout=120)
    image = client.containers.get(PRODUCER_CONTAINER).attrs["Config"]["Image"]
    client.containers.run(
        image,
        ["produce", "--runs-root", "/runs", "--run-id", run_id, "--bootstrap-servers", bootstrap,
         "--topic", "events", "--rate", str(rate), "--duration", str(seconds)],
        network=NETWORK,
        volumes={str(REPO / "tools"): {"bind": "/opt/chaosbed/tools", "mode": "ro"},
                 str(root): {"bind": "/runs", "mode": "rw"}},
        labels={"io.chaosbed.bench": "proxies"},
        remove=True,
    )  # fmt: skip


def measure(dsn: str, root: Path, run_id: str, warmup: float, rows_expected: int) -> dict[str, Any]:
    """Wait for the run's rows, then its end-to-end rate and latency after the warm-up."""
    start_ms = min(s.start_ms for s in load_ledger(root / run_id).sessions)
    deadline = time.monotonic() + 300
    with contextlib.closing(connect(dsn, what="sink")) as conn, conn.cursor() as cur:
        while True:
            cur.execute("SELECT count(*) FROM events WHERE run_id = %s", (run_id,))
            rows = cur.fetchone()[0]
            conn.commit()
            if rows >= rows_expected or time.monotonic() > deadline:
                break
            time.sleep(2)
        cur.execute(
            """SELECT count(*), extract(epoch FROM max(committed_at)) * 1000 FROM events WHERE run_id = %s""",
            (run_id,),
        )
        total, last_ms = cur.fetchone()
        cur.execute(
            """SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY lat), max(lat)
               FROM (SELECT extract(epoch FROM committed_at - produced_at) * 1000 AS lat
                       FROM events WHERE run_id = %s AND produced_at >= to_timestamp(%s / 1000.0)) t""",
            (run_id, start_ms + int(warmup * 1000)),
        )
        pct, mx = cur.fetchone()
    span_s = (float(last_ms) - start_ms) / 1000 if last_ms else None
    return {
        "run_id": run_id,
        "rows": int(total),
        "rows_expected": rows_expected,
        "e2e_rate": round(total / span_s) if span_s else None,
        "p50_ms": round(pct[0], 1) if pct else None,
        "p95_ms": round(pct[1], 1) if pct else None,
        "p99_ms": round(pct[2], 1) if pct else None,
        "max_ms": round(float(mx), 1) if mx is not None else None,
    }


def one_run(
    dsn: str, root: Path, label: str, bootstrap: str, rate: int, seconds: float, warmup: float, log: Any
) -> dict[str, Any]:
    run_id = f"bench-proxy-{label}-{uuid.uuid4().hex[:6]}"
    log(f"proxies: {label}: {rate}/s for {seconds + warmup:.0f}s through {bootstrap}")
    make_room(dsn, log)
    produce_in_network(root, run_id, bootstrap, rate, warmup + seconds)
    return {"label": label, "bootstrap": bootstrap} | measure(
        dsn, root, run_id, warmup, int(rate * (warmup + seconds) * 0.99)
    )


def with_latency(
    dsn: str, root: Path, rate: int, seconds: float, warmup: float, log: Any, wait_ready: Any
) -> dict[str, Any]:
    """The proxied run with 100 ms on every broker path, held by `tools chaos run` for the whole run."""
    total = int(warmup + seconds + 10)
    scenario = root / "proxy-latency.yml"
    scenario.write_text(LATENCY_SCENARIO.replace("{seconds}", str(total)))
    chaos = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "tools"), "chaos", "run", "--scenario", str(scenario),
         "--runs-root", str(root)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        time.sleep(3)  # the toxics are in place well before the producer's first batch
        result = one_run(dsn, root, "latency-100ms", PROXIED, rate, seconds, warmup, log)
    finally:
        out, _ = chaos.communicate(timeout=total + 120)
    result["chaos_exit"] = chaos.returncode
    result["chaos_tail"] = out.strip().splitlines()[-3:]
    wait_ready(600)
    return result


def bench_proxies(
    dsn: str, root: Path, rate: int, seconds: float, warmup: float, log: Any, wait_ready: Any
) -> dict[str, Any]:
    try:
        provision(proxies=False, log=log)
        wait_ready(600)
        direct = one_run(dsn, root, "direct", DIRECT, rate, seconds, warmup, log)
    finally:
        provision(proxies=True, log=log)
    wait_ready(600)
    proxied = one_run(dsn, root, "proxied", PROXIED, rate, seconds, warmup, log)
    latency = with_latency(dsn, root, rate, seconds, warmup, log, wait_ready)
    rate_ratio = proxied["e2e_rate"] / direct["e2e_rate"] if direct["e2e_rate"] else None
    p99_ratio = direct["p99_ms"] / proxied["p99_ms"] if proxied["p99_ms"] else None
    return {
        "rate": rate,
        "seconds": seconds,
        "warmup_excluded_s": warmup,
        "runs": [direct, proxied, latency],
        "rate_ratio_proxied_vs_direct": None if rate_ratio is None else round(rate_ratio, 3),
        "p99_ratio_direct_vs_proxied": None if p99_ratio is None else round(p99_ratio, 3),
        "target_ratio": TARGET_RATIO,
        "p99_ms_with_100ms_on_every_broker_path": latency["p99_ms"],
    }


def table_rows(res: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The results table's rows: (what, measured, target, met)."""
    by = {run["label"]: run for run in res["runs"]}
    rows = []
    for what, ratio, a, b, key in (
        ("e2e rate, proxied / direct", res["rate_ratio_proxied_vs_direct"], "proxied", "direct", "e2e_rate"),
        ("e2e p99, direct / proxied", res["p99_ratio_direct_vs_proxied"], "direct", "proxied", "p99_ms"),
    ):
        measured = f"{by[a][key]} / {by[b][key]} = {ratio}" if ratio is not None else "not measured"
        met = "-" if ratio is None else ("yes" if ratio >= res["target_ratio"] else "NO")
        rows.append(
            (
                f"Toxiproxy on every client path: {what} at {res['rate']:,}/s",
                measured,
                f">= {res['target_ratio']}",
                met,
            )
        )
    rows.append(
        (
            f"e2e p99 with 100 ms on every broker path at {res['rate']:,}/s",
            f"{res['p99_ms_with_100ms_on_every_broker_path']} ms",
            "-",
            "-",
        )
    )
    return rows
