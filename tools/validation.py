"""The checker: every attempted id from the ledger against the sink table, Jepsen set-checker style.

Classes (defined in docs/checker.md): acked ids must be present exactly once (`missing` = lost);
present ids must have been attempted (`extra` = unexpected); no id may be delivered twice
(`duplicate`); a definitely failed send must not be present (`failed_present`, Jepsen's aborted read
G1a); indeterminate ids may be present or absent (counted, always valid).

Scale: the ledger's ranges go to PostgreSQL via COPY; one ordered pass over the run's sink rows
labels each row with the ledger range that contains it (a running max over the union of range
starts and row ids), so no Python object per id and no per-id table is built.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import connection

from tools.layers import classify_layers
from tools.ledger import ACKED, FAILED, INDETERMINATE, LedgerState
from tools.run.clock import now_iso
from tools.run.meta import check_sink_table

SAMPLE_LIMIT = 20

REPLAYS_NOTE = (
    "replays_absorbed = sum of sink_batches.replays and upsert_absorbed_rows = sum of "
    "(rows_staged - rows_inserted), over the sink batches whose (query_id, batch_id) appears on "
    "at least one of this run's rows; a batch none of whose rows survived (all absorbed) is not "
    "attributable and not counted."
)


@dataclass
class ValidationResult:
    run_id: str
    sink_table: str
    validated_at: str
    attempted_count: int
    acked_count: int
    failed_count: int
    indeterminate_count: int
    rows_count: int
    present_ids_count: int
    missing_count: int
    extra_count: int
    duplicate_count: int
    duplicate_excess_deliveries: int
    indeterminate_present: int
    indeterminate_absent: int
    failed_present: int
    offset_mismatch_count: int
    replays_absorbed: int
    upsert_absorbed_rows: int
    attributed_batches: int
    producer_sessions: int
    samples: dict[str, list[int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # The layered result (tools/layers.py): every class by layer with count and witnesses; empty when
    # the layered check did not run (its tables are missing).
    layers: dict[str, Any] = field(default_factory=dict)
    kafka_audit: dict[str, Any] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        out = []
        if self.missing_count:
            out.append(f"{self.missing_count} acknowledged ids missing (lost)")
        if self.extra_count:
            out.append(f"{self.extra_count} ids present that were never attempted")
        if self.duplicate_count:
            out.append(f"{self.duplicate_count} ids delivered more than once")
        if self.failed_present:
            out.append(f"{self.failed_present} ids present although their send definitely failed")
        # Kafka and Spark classes that are errors (the sink's are the set checker's, above).
        for name, c in self.layers.get("classes", {}).items():
            if c["layer"] != "sink" and c["count"] and not c["allowed"]:
                out.append(f"{c['count']} {c['layer']} {name}")
        return out

    @property
    def valid(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["valid"] = self.valid
        data["problems"] = self.problems
        return data


# One row per distinct id of the run: (id, rows, deliveries, partition, offset). {where} narrows
# the scan (sampling looks only inside a few ranges, through the (run_id, event_id) index).
_SINK_ROWS = {
    "events": """
        SELECT event_id AS id, 1::bigint AS nrows, deliveries::bigint AS n,
               kafka_partition AS part, kafka_offset AS off
        FROM events WHERE run_id = %(run_id)s {where}""",
    # No key here: a replayed batch is extra rows, so deliveries = number of rows.
    "events_append": """
        SELECT event_id AS id, count(*) AS nrows, count(*) AS n,
               min(kafka_partition) AS part, min(kafka_offset) AS off
        FROM events_append WHERE run_id = %(run_id)s {where} GROUP BY event_id""",
}

# Each sink id labelled with the ledger range that contains it (r.* NULL: never attempted). The
# running max over range starts and ids, ordered by id, is the start of the enclosing range; the
# default RANGE frame includes peers, so an id equal to a range start sees that range.
_CLASSIFIED = """
WITH labelled AS (
    SELECT u.id, u.nrows, u.n, u.part, u.off, u.is_range,
           max(CASE WHEN u.is_range THEN u.id END) OVER (ORDER BY u.id) AS rlo
    FROM (
        SELECT lo AS id, NULL::bigint AS nrows, NULL::bigint AS n, NULL::int AS part,
               NULL::bigint AS off, true AS is_range
        FROM chk_ranges
        UNION ALL
        SELECT s.id, s.nrows, s.n, s.part, s.off, false FROM ({sink}) s
    ) u
), classified AS (
    SELECT l.id, l.nrows, l.n, l.part, l.off, r.lo, r.cls,
           (r.cls = {acked} AND (l.part <> r.part OR l.off <> r.off + (l.id - r.lo))) AS off_mismatch
    FROM labelled l LEFT JOIN chk_ranges r ON r.lo = l.rlo AND l.id <= r.hi
    WHERE NOT l.is_range
)
"""

_BIGINT_MAX = 2**63 - 1


def _copy_ranges(cur: Any, state: LedgerState) -> None:
    cur.execute(
        "CREATE TEMP TABLE chk_ranges (lo bigint PRIMARY KEY, hi bigint NOT NULL, cls smallint NOT NULL,"
        " part int, off bigint) ON COMMIT DROP"
    )
    null = "\\N"  # COPY's NULL
    buf = io.StringIO()
    for lo, hi, cls, part, off in state.classified():
        buf.write(f"{lo}\t{hi}\t{cls}\t{null if part is None else part}\t{null if off is None else off}\n")
    buf.seek(0)
    cur.copy_expert("COPY chk_ranges (lo, hi, cls, part, off) FROM STDIN", buf)
    cur.execute("ANALYZE chk_ranges")


LAYER_TABLES = ("sink_batch_reads", "kafka_log", "kafka_log_audits")


def missing_layer_tables(conn: connection) -> list[str]:
    """The layered check's tables that the database lacks (a schema older than the checker)."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT t FROM unnest(%s::text[]) t WHERE to_regclass(t) IS NULL", (list(LAYER_TABLES),))
        return [r[0] for r in cur.fetchall()]


def validate_run(
    conn: connection,
    run_id: str,
    state: LedgerState,
    sink_table: str = "events",
    *,
    layered: bool = True,
    audited: bool = False,
) -> ValidationResult:
    """Classify every id of the run; read-only against the sink (temp tables only). `layered`: also
    place each anomaly at its layer (tools/layers.py); `audited`: the run's Kafka log is in kafka_log."""
    check_sink_table(sink_table)
    counts = state.counts()
    params = {"run_id": run_id}
    classified = _CLASSIFIED.format(sink=_SINK_ROWS[sink_table].format(where=""), acked=ACKED)
    with conn, conn.cursor() as cur:
        # Enough memory for the window pass to stay in RAM at 10M rows; this transaction only.
        cur.execute("SET LOCAL work_mem = '256MB'")
        _copy_ranges(cur, state)
        cur.execute(
            "CREATE TEMP TABLE chk_hits ON COMMIT DROP AS "
            + classified
            + """
            SELECT lo, cls, count(*) AS present, sum(nrows) AS nrows,
                   count(*) FILTER (WHERE n > 1) AS dups,
                   coalesce(sum(n - 1) FILTER (WHERE n > 1), 0) AS excess,
                   count(*) FILTER (WHERE off_mismatch) AS off_mismatch
            FROM classified GROUP BY lo, cls""",
            params,
        )
        cur.execute(
            """
            SELECT coalesce(sum(present), 0), coalesce(sum(nrows), 0), coalesce(sum(dups), 0),
                   coalesce(sum(excess), 0), coalesce(sum(off_mismatch), 0),
                   coalesce(sum(present) FILTER (WHERE cls IS NULL), 0),
                   coalesce(sum(present) FILTER (WHERE cls = %(acked)s), 0),
                   coalesce(sum(present) FILTER (WHERE cls = %(failed)s), 0),
                   coalesce(sum(present) FILTER (WHERE cls = %(indet)s), 0)
            FROM chk_hits""",
            {"acked": ACKED, "failed": FAILED, "indet": INDETERMINATE},
        )
        present, nrows, dups, excess, off_mismatch, extra, acked_present, failed_present, indet_present = (
            int(v) for v in cur.fetchone()
        )
        samples = _samples(cur, sink_table, state, params, missing=acked_present < counts["acked"])
        replays, absorbed, batches = _replays(cur, sink_table, params)
        layers: dict[str, Any] = {}
        if layered:
            sink_counts: dict[str, Any] = {
                "duplicate": dups,
                "extra": extra,
                "failed_present": failed_present,
                "indeterminate_present": indet_present,
                **{f"sample_{k}": v for k, v in samples.items()},
            }
            layers = classify_layers(cur, run_id, sink_table, sink_counts, audited)
    result = ValidationResult(
        run_id=run_id,
        sink_table=sink_table,
        validated_at=now_iso(),
        attempted_count=counts["attempted"],
        acked_count=counts["acked"],
        failed_count=counts["failed"],
        indeterminate_count=counts["indeterminate"],
        rows_count=nrows,
        present_ids_count=present,
        missing_count=counts["acked"] - acked_present,
        extra_count=extra,
        duplicate_count=dups,
        duplicate_excess_deliveries=excess,
        indeterminate_present=indet_present,
        indeterminate_absent=counts["indeterminate"] - indet_present,
        failed_present=failed_present,
        offset_mismatch_count=off_mismatch,
        replays_absorbed=replays,
        upsert_absorbed_rows=absorbed,
        attributed_batches=batches,
        producer_sessions=len(state.sessions),
        samples=samples,
        layers=layers,
        notes=[
            REPLAYS_NOTE,
            "offset_mismatch_count (informational, not part of `valid`): acked ids whose sink row "
            "records a different Kafka partition/offset than the producer's ack.",
        ],
    )
    return result


def _samples(
    cur: Any, sink_table: str, state: LedgerState, params: dict[str, Any], *, missing: bool
) -> dict[str, list[int]]:
    """The lowest SAMPLE_LIMIT offending ids per class.

    chk_hits says which ranges hold offenders; only the first SAMPLE_LIMIT such ranges are read
    again, through the index, so sampling costs little even at 10M ids.
    """
    out: dict[str, list[int]] = {
        "missing": [],
        "extra": [],
        "duplicate": [],
        "failed_present": [],
        "offset_mismatch": [],
    }
    if missing:
        # Acked ranges with fewer hits than ids hold the missing ids: expand just those.
        cur.execute(
            f"""
            WITH gaps AS (
                SELECT r.lo, r.hi FROM chk_ranges r LEFT JOIN chk_hits h ON h.lo = r.lo
                WHERE r.cls = {ACKED} AND coalesce(h.present, 0) < r.hi - r.lo + 1
                ORDER BY r.lo LIMIT {SAMPLE_LIMIT}
            )
            SELECT g.id FROM gaps, LATERAL generate_series(gaps.lo, gaps.hi) AS g(id)
            WHERE NOT EXISTS (SELECT 1 FROM {sink_table} t WHERE t.run_id = %(run_id)s AND t.event_id = g.id)
            ORDER BY g.id LIMIT {SAMPLE_LIMIT}""",
            params,
        )
        out["missing"] = [int(r[0]) for r in cur.fetchall()]
    # Ids outside every ledger range live in the gaps of the attempted set (usually only below 0
    # or above the last id): give those gaps to the same sampler as pseudo-ranges.
    attempted = state.attempted()
    bounds = [(-_BIGINT_MAX, -1), *[(a[1] + 1, b[0] - 1) for a, b in pairwise(attempted)]]
    bounds.append((attempted[-1][1] + 1 if attempted else 0, _BIGINT_MAX))
    cur.execute("CREATE TEMP TABLE chk_gaps (lo bigint, hi bigint) ON COMMIT DROP")
    cur.executemany("INSERT INTO chk_gaps VALUES (%s, %s)", bounds)
    sink = _SINK_ROWS[sink_table].format(where="AND event_id BETWEEN r.lo AND r.hi")
    # (name, which chk_hits groups hold offenders, condition on a sink row s within range r)
    wanted = [
        ("extra", "h.lo IS NULL", "true"),
        ("duplicate", "h.dups > 0", "s.n > 1"),
        ("failed_present", f"h.cls = {FAILED}", "true"),
        ("offset_mismatch", "h.off_mismatch > 0", "(s.part <> r.part OR s.off <> r.off + (s.id - r.lo))"),
    ]
    for name, group, condition in wanted:
        cur.execute(f"SELECT count(*) FROM chk_hits h WHERE {group}")
        if not cur.fetchone()[0]:
            continue
        # The extras group has no range of its own: it is searched through the gaps.
        extras_too = (
            "UNION ALL SELECT g.lo, g.hi, NULL::int, NULL::bigint FROM chk_gaps g"
            if name
            in (
                "extra",
                "duplicate",
            )
            else ""
        )
        ranges_sql = (
            f"SELECT r.lo, r.hi, r.part, r.off FROM chk_ranges r JOIN chk_hits h ON h.lo = r.lo WHERE {group}"
            if name != "extra"
            else "SELECT NULL::bigint AS lo, NULL::bigint AS hi, NULL::int AS part, NULL::bigint AS off "
            "WHERE false"
        )
        cur.execute(
            f"""
            WITH sel AS (
                SELECT * FROM ({ranges_sql} {extras_too}) x ORDER BY lo LIMIT {SAMPLE_LIMIT + len(bounds)}
            )
            SELECT s.id FROM sel r, LATERAL ({sink}) s WHERE {condition}
            ORDER BY s.id LIMIT {SAMPLE_LIMIT}""",
            params,
        )
        out[name] = [int(r[0]) for r in cur.fetchall()]
    return out


def _replays(cur: Any, sink_table: str, params: dict[str, Any]) -> tuple[int, int, int]:
    cur.execute(
        sql.SQL(
            """
            SELECT count(*), coalesce(sum(b.replays), 0), coalesce(sum(b.rows_staged - b.rows_inserted), 0)
            FROM sink_batches b
            WHERE (b.query_id, b.batch_id) IN
                  (SELECT DISTINCT query_id, batch_id FROM {} WHERE run_id = %(run_id)s)
            """
        ).format(sql.Identifier(sink_table)),
        params,
    )
    batches, replays, absorbed = cur.fetchone()
    return int(replays), int(absorbed), int(batches)


def wait_until_settled(
    conn: connection,
    run_id: str,
    sink_table: str,
    quiet_s: float,
    timeout_s: float,
    progress: Callable[[str], None] | None = None,
) -> bool:
    """Wait until the run's sink row count has not changed for quiet_s seconds (the final drain).

    Returns False if it was still changing after timeout_s; the caller validates anyway. `progress`
    hears the count and how long it has held after each poll.
    """
    import time

    check_sink_table(sink_table)
    query = sql.SQL("SELECT count(*) FROM {} WHERE run_id = %s").format(sql.Identifier(sink_table))
    deadline = time.monotonic() + timeout_s
    last: int | None = None
    since = time.monotonic()
    while True:
        with conn, conn.cursor() as cur:
            cur.execute(query, (run_id,))
            count = int(cur.fetchone()[0])
        now = time.monotonic()
        if count != last:
            last, since = count, now
        if progress is not None:
            progress(f"{count:,} rows, unchanged for {now - since:.0f} of {quiet_s:.0f} s")
        if now - since >= quiet_s:
            return True
        if now >= deadline:
            return False
        time.sleep(min(1.0, max(0.1, quiet_s / 5)))
