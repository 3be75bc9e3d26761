"""`make bench` soak section: a long seeded random experiment, and whether anything grows without bound.

The experiment is `tools experiment run` as a library (scenarios/random.yml, fixed seed); before and
after it the bench records each chaosbed container's memory (Docker's own accounting) and the size of
each PostgreSQL table, so growth over the hour is a measured figure.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.room import make_room
from tools.experiment.experiment import ExperimentSpec, run_experiment
from tools.pgconn import connect
from tools.run.layout import VALIDATION_FILE

_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "kB": 1000, "MB": 1000**2, "GB": 1000**3}


def _bytes(text: str) -> int:
    """Docker's human sizes ("512.3MiB") in bytes."""
    text = text.strip()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * _UNITS[unit])
    return int(float(text))


def container_memory() -> dict[str, int]:
    """Bytes of memory each running chaosbed container uses now."""
    res = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{json .}}", "--filter", "name=^chaosbed-"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    usage: dict[str, int] = {}
    for line in res.stdout.splitlines():
        row = json.loads(line)
        usage[row["Name"]] = _bytes(row["MemUsage"].split("/", 1)[0])
    return usage


def table_sizes(dsn: str) -> dict[str, int]:
    """Bytes of each table of the sink database (with its indexes and TOAST)."""
    with contextlib.closing(connect(dsn, what="sink")) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER BY 1"
        )
        return {name: int(size) for name, size in cur.fetchall()}


def _growth(before: dict[str, int], after: dict[str, int]) -> dict[str, dict[str, int]]:
    return {
        name: {"start": before.get(name, 0), "end": size, "growth": size - before.get(name, 0)}
        for name, size in sorted(after.items())
    }


def bench_soak(
    run_dir: Path, bootstrap: str, dsn: str, minutes: float, rate: int, seed: int
) -> dict[str, Any]:
    make_room(dsn, lambda line: print(line, flush=True))  # the table sizes then start from few runs
    memory_before, tables_before = container_memory(), table_sizes(dsn)
    began = time.monotonic()
    spec = ExperimentSpec(
        scenario="random",
        seed=seed,
        duration=f"{minutes:g}m",
        bootstrap_servers=bootstrap,
        postgres_dsn=dsn,
        rate=rate,
        settle_s=30,
        settle_timeout_s=900,
        run_dir=run_dir,
    )
    result = run_experiment(spec)
    wall = time.monotonic() - began
    validation = (
        json.loads((run_dir / VALIDATION_FILE).read_text()) if (run_dir / VALIDATION_FILE).exists() else {}
    )
    return {
        "scenario": "random",
        "seed": seed,
        "minutes": minutes,
        "rate": rate,
        "run_id": run_dir.name,
        "exit": result.exit_code,
        "wall_s": round(wall),
        "valid": validation.get("valid"),
        "missing": validation.get("missing_count"),
        "duplicate": validation.get("duplicate_count"),
        "extra": validation.get("extra_count"),
        "memory_bytes": _growth(memory_before, container_memory()),
        "table_bytes": _growth(tables_before, table_sizes(dsn)),
    }
