"""Where a fault's recovery time goes: producer acknowledgements against sink commits, per second.

A probe aid for benchmarks/README.md, not part of `make bench`: for each fault of a kept run directory
(`bench.py --keep-runs`), it prints per partition how late the producer's acknowledgements came for the
ids produced in the fault's first seconds, and per second of `committed_at` the rows and their worst
end-to-end latency, so a slow recovery can be pinned on Kafka (late acks) or on Spark (late commits).

    .venv/bin/python benchmarks/anatomy.py runs/bench-<time>/bench-rec-<id> [--window 6] [--seconds 14]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tools.pgconn import connect  # noqa: E402
from tools.run.clock import iso_from_ms  # noqa: E402
from tools.run.layout import LEDGER_FILE  # noqa: E402
from tools.run.meta import load_run  # noqa: E402
from tools.run.timeline import read_faults  # noqa: E402


def read_ledger(path: Path) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int, int]]]:
    """Reservations (ms, lo, hi) and acknowledgements (ms, lo, hi, partition) of a run's ledger."""
    reserved: list[tuple[int, int, int]] = []
    acked: list[tuple[int, int, int, int]] = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["R"]:
            reserved.append((int(parts[1]), int(parts[2]), int(parts[3])))
        elif parts[:1] == ["A"]:
            acked.append((int(parts[1]), int(parts[2]), int(parts[3]), int(parts[4])))
    return reserved, acked


def reserved_at(reserved: list[tuple[int, int, int]], event_id: int) -> int | None:
    for ms, lo, hi in reserved:
        if lo <= event_id <= hi:
            return ms
    return None


def ack_delays(run_dir: Path, start_ms: int, window_ms: int) -> dict[int, tuple[int, int]]:
    """Per partition: (worst ack delay ms, last ack ms after start) for ids reserved in the window."""
    reserved, acked = read_ledger(run_dir / LEDGER_FILE)
    worst: dict[int, tuple[int, int]] = {}
    for ack_ms, lo, _hi, partition in acked:
        res_ms = reserved_at(reserved, lo)
        if res_ms is None or not start_ms - 500 <= res_ms < start_ms + window_ms:
            continue
        delay = ack_ms - res_ms
        prev = worst.get(partition, (0, 0))
        worst[partition] = (max(prev[0], delay), max(prev[1], ack_ms - start_ms))
    return worst


def per_second(dsn: str, run_id: str, start_ms: int, seconds: int) -> list[tuple[float, int, float]]:
    query = """
        SELECT floor(extract(epoch FROM committed_at)) AS sec, count(*),
               max(extract(epoch FROM committed_at - produced_at) * 1000)
        FROM events WHERE run_id = %s
          AND committed_at >= to_timestamp(%s / 1000.0) - interval '2 s'
          AND committed_at < to_timestamp(%s / 1000.0) + %s * interval '1 s'
        GROUP BY 1 ORDER BY 1"""
    with connect(dsn, what="sink") as conn, conn.cursor() as cur:
        cur.execute(query, (run_id, start_ms, start_ms, seconds))
        return [(float(sec), int(n), float(mx)) for sec, n, mx in cur.fetchall()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--window", type=float, default=6.0, help="ids produced this many s after the start")
    ap.add_argument("--seconds", type=int, default=14, help="commit seconds shown after the start")
    args = ap.parse_args()
    run = load_run(args.run_dir)
    faults, _notes = read_faults(args.run_dir)
    for fault in faults:
        window = fault.window
        start = window.start_ms
        end = iso_from_ms(window.end_ms) if window.end_ms is not None else None
        print(f"== {window.kind} {window.target} at {iso_from_ms(start)} (ends {end})")
        delays = ack_delays(args.run_dir, start, int(args.window * 1000))
        cells = defaultdict(str)
        for partition, (worst, last) in sorted(delays.items()):
            cells[partition] = f"p{partition} worst {worst / 1000:.1f} s, last {last / 1000:.1f} s in"
        print("  acks: " + "; ".join(cells[p] for p in sorted(cells)))
        for sec, rows, worst_ms in per_second(run["postgres_dsn"], run["run_id"], start, args.seconds):
            print(f"  {sec - start / 1000:+6.1f} s  {rows:5d} rows  worst {worst_ms:7.0f} ms")


if __name__ == "__main__":
    main()
