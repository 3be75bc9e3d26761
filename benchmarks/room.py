"""Room in the sink before a bench run: all but the newest runs' rows leave PostgreSQL (tools/retention.py).
One e2e search step alone writes millions of rows, and each measurement reads its own run right after it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import psycopg2

from tools.pgconn import connect
from tools.retention import prune_runs

BENCH_KEEP_RUNS = 3


def make_room(dsn: str, log: Callable[[str], None]) -> None:
    """Remove older runs' rows, or log why not (the run goes on)."""
    try:
        with contextlib.closing(connect(dsn, what="sink")) as conn:
            pruned = prune_runs(conn, BENCH_KEEP_RUNS)
    except psycopg2.Error as exc:
        log(f"warning: older runs not removed: {str(exc).splitlines()[0]}")
        return
    if pruned.pruned:
        log(pruned.summary(BENCH_KEEP_RUNS))
