"""Both Spark deployments in one run: the job on `spark_deploy: local` and on the standalone cluster.

    flock /tmp/chaosbed-pipeline.lock .venv/bin/python benchmarks/deployments.py [--smoke]

For each deployment: site.yml provisions it, then the max sustained rate (bench.bench_e2e), the latency
percentiles at fixed rates (bench.bench_latency) and, on the cluster, the recovery of each cluster fault
class of scenarios/cluster.yml (executor kill, worker kill, master restart, worker pause), each injected
--recovery-repeats times alone (recovery_plan.py; the worst is what counts). The ratios standalone /
local are what decide the default (benchmarks/README.md). The pipeline is provisioned back on the
default deploy at the end, also after a failure. `bench.py` runs this as its `deployments` section.

--smoke: a few seconds per measurement and one injection per class: checks the code path, not a figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import bench, recovery_plan  # noqa: E402

DEPLOYS = ("local", "standalone")
CLUSTER_SCENARIO = REPO / "scenarios" / "cluster.yml"


def provision(deploy: str | None) -> None:
    """site.yml with spark_deploy set (None: the inventory's default)."""
    extra = ["-e", f"spark_deploy={deploy}"] if deploy else []
    bench.log(f"provisioning spark_deploy={deploy or 'default'}")
    res = subprocess.run(
        [str(REPO / ".venv" / "bin" / "ansible-playbook"), "playbooks/site.yml", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if res.returncode != 0:
        raise RuntimeError(f"site.yml (spark_deploy={deploy}) failed: {res.stdout[-1500:]}")


def cluster_plan(repeats: int) -> dict[str, Any]:
    """Every fault class of scenarios/cluster.yml but the concurrent one, `repeats` times each, alone. The
    executor kill fires at its time instead of at a batch start (batches run back to back under load)."""
    source = yaml.safe_load(CLUSTER_SCENARIO.read_text())
    source["faults"] = [{k: v for k, v in f.items() if k != "after"} for f in source["faults"]]
    return recovery_plan.recovery_scenario(source, repeats, gap_s=45)


def measure(deploy: str, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    bench.wait_ready(600)
    out: dict[str, Any] = {"deploy": deploy}
    rates = [int(r) for r in args.rates.split(",")] if args.rates else None
    out["e2e"] = bench.bench_e2e(root, rates, args.warmup, args.step_seconds, args.max_steps)
    out["latency"] = [
        bench.bench_latency(root, int(rate), args.latency_seconds, args.warmup)
        for rate in args.latency_rates.split(",")
    ]
    if deploy == "standalone":
        scenario = root / f"cluster-recovery-{uuid.uuid4().hex[:6]}.yml"
        scenario.write_text(yaml.safe_dump(cluster_plan(args.recovery_repeats), sort_keys=False))
        out["recovery"] = bench.bench_recovery(root, scenario, args.recovery_rate)
    return out


def ratios(by_deploy: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """standalone / local of the max sustained rate and of each latency percentile."""
    local, cluster = by_deploy.get("local"), by_deploy.get("standalone")
    if not local or not cluster:
        return {}
    out: dict[str, float | None] = {}
    a, b = local["e2e"].get("sustained_eps"), cluster["e2e"].get("sustained_eps")
    out["sustained_eps"] = round(b / a, 2) if a and b else None
    for lo, hi in zip(local["latency"], cluster["latency"], strict=False):
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            x, y = lo.get(key), hi.get(key)
            out[f"{key}@{lo.get('rate')}"] = round(y / x, 2) if x and y else None
    return out


def bench_deployments(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    by_deploy: dict[str, dict[str, Any]] = {}
    try:
        for deploy in DEPLOYS:
            provision(deploy)
            by_deploy[deploy] = measure(deploy, root, args)
    finally:
        provision(None)
    return {"by_deploy": by_deploy, "standalone_vs_local": ratios(by_deploy)}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    bench.add_measurement_arguments(ap)
    ap.add_argument("--recovery-repeats", type=int, default=3, help="injections per cluster fault class")


def smoke(args: argparse.Namespace) -> None:
    """A few seconds per measurement and one injection per class."""
    args.rates, args.max_steps, args.warmup, args.step_seconds = "2000", 1, 5, 10
    args.latency_rates, args.latency_seconds, args.recovery_repeats = "1000", 10, 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    ap.add_argument("--smoke", action="store_true", help="check the code path (no figures)")
    args = ap.parse_args()
    if args.smoke:
        smoke(args)
    with bench.bench_root(keep=False) as root:
        res = bench_deployments(root, args)
    res["measured_at"] = datetime.now().astimezone().isoformat(timespec="seconds")
    res["smoke"] = args.smoke
    out = bench.RESULTS / f"{datetime.now():%Y-%m-%d}-deployments{'-smoke' if args.smoke else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(json.dumps(res["standalone_vs_local"], indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
