"""Measure `tools produce --rate 0` (as fast as possible, acks=all, idempotent) against a real broker.

    .venv/bin/python benchmarks/produce_rate.py [--count 300000] [--bootstrap-servers HOST:PORT --topic T]

Without --bootstrap-servers a throwaway single-node KRaft broker is started (tests/fixtures/kafka.py).
The rate is acknowledged events per second, from the ledger: acks recorded / (last ack record - first
reservation). Prints `produce_events_per_second=<n>`; the target is >= 20,000.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from fixtures.kafka import running_kafka  # noqa: E402

from tools import ranges  # noqa: E402
from tools.ledger import load_ledger  # noqa: E402
from tools.run.layout import LEDGER_FILE  # noqa: E402

TARGET = 20_000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=300_000)
    parser.add_argument("--bootstrap-servers")
    parser.add_argument("--topic", help="an existing topic (default: a new one on the throwaway broker)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        bootstrap, topic = args.bootstrap_servers, args.topic
        if not bootstrap:
            broker = stack.enter_context(running_kafka(partitions=3))
            bootstrap = broker.bootstrap
            topic = broker.create_topic(f"bench_{uuid.uuid4().hex[:8]}")
        if not topic:
            raise SystemExit("--topic is required with --bootstrap-servers")
        root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        run_id = f"bench-{uuid.uuid4().hex[:8]}"
        t = time.monotonic()
        res = subprocess.run(
            [sys.executable, "-m", "tools", "produce", "--run-id", run_id, "--runs-root", str(root),
             "--bootstrap-servers", bootstrap, "--topic", topic, "--rate", "0", "--count", str(args.count)],
            cwd=REPO, capture_output=True, text=True, check=False,
        )  # fmt: skip
        wall = time.monotonic() - t
        if res.returncode != 0:
            raise SystemExit(f"tools produce failed ({res.returncode}): {res.stderr.strip()}")
        state = load_ledger(root / run_id)
        acked = ranges.total(state.acked())
        first_reserve = min(line_ts for line_ts in _reservation_times(root / run_id / LEDGER_FILE))
        last_ack = max(a.ts_ms for a in state.acks)
        rate = acked / ((last_ack - first_reserve) / 1000)
        print(
            f"acked {acked:,} of {args.count:,} in {(last_ack - first_reserve) / 1000:.2f}s of producing "
            f"({wall:.1f}s wall incl. start-up); {len(state.acks)} ack ranges in the ledger",
            file=sys.stderr,
        )
        print(f"produce_events_per_second={rate:.0f}")
        if acked != args.count or rate < TARGET:
            raise SystemExit(f"below target: {acked} acked, {rate:.0f}/s (target {TARGET}/s)")


def _reservation_times(path: Path) -> list[int]:
    return [int(line.split()[1]) for line in path.read_text().splitlines() if line.startswith("R ")]


if __name__ == "__main__":
    main()
