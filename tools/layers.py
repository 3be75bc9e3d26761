"""The layered checker: every anomaly placed at the hop where it happened, with witnesses.

Four independent records of a run meet here (docs/checker.md, "Anomalies by layer"):
- the producer's ledger: which id Kafka acknowledged at which (partition, offset) (chk_ranges);
- the Kafka log as the audit read it after the run (kafka_log, kafka_log_audits; tools/audit.py);
- the offsets each Spark batch read, recorded by the sink with the batch (sink_batch_reads), and the
  sink's batch markers (sink_batches);
- the sink rows, with the (partition, offset, batch) each came from.

Runs inside validate_run's transaction and reuses its temp tables: chk_ranges (the ledger) and
chk_hits (sink presence per ledger range). Only ranges where some record disagrees are expanded id
by id, so a healthy run costs one ordered pass over the audited log.
"""

from __future__ import annotations

from typing import Any

from psycopg2 import sql

from tools.ledger import ACKED

WITNESSES = 10

# (layer, class, valid when non-zero?, definition): the one definition of each class, quoted in
# validation.json and the report.
CLASSES: list[tuple[str, str, bool, str]] = [
    (
        "kafka",
        "lost-write",
        False,
        "an acknowledged id is nowhere in the audited log, although the log was read past its "
        "acknowledged offset in that partition: proven lost by Kafka, not late",
    ),
    (
        "kafka",
        "log-absent",
        False,
        "an acknowledged id is nowhere in the audited log and nothing past its acknowledged offset "
        "(or nothing at or below it: retention) was read, so loss cannot be proven from the log",
    ),
    (
        "kafka",
        "inconsistent-offset",
        False,
        "the acknowledged position holds a different id than the producer was told, or the id sits "
        "at another position",
    ),
    ("kafka", "log-duplicate", False, "one id at two or more positions of the log"),
    (
        "spark",
        "skipped",
        False,
        "an id in the log inside the offset range a committed batch claims to have read, yet not in the sink",
    ),
    (
        "spark",
        "offset-gap",
        False,
        "offsets of the run's span that no committed batch read: the next batch (in commit order) "
        "starts after the previous one ended",
    ),
    (
        "spark",
        "offset-overlap",
        True,
        "the next committed batch starts before the previous one ended: offsets read twice (the "
        "sink's key absorbs them; duplicates would show in the sink layer)",
    ),
    (
        "spark",
        "unread",
        False,
        "an id in the log past the end of the last committed batch: Spark had not read it when the "
        "run was validated",
    ),
    (
        "spark",
        "sink-ahead-of-checkpoint",
        True,
        "Spark ran a batch again that the sink had already committed: its commit log did not hold "
        "it (information; the batch marker absorbs the replay)",
    ),
    ("spark", "replay-divergence", False, "a replayed batch read other offsets or handed over other rows"),
    ("sink", "duplicate", False, "an id delivered more than once into the sink"),
    ("sink", "extra", False, "an id in the sink that the producer never attempted"),
    ("sink", "failed-present", False, "an id in the sink although its send definitely failed (G1a)"),
    (
        "sink",
        "indeterminate",
        True,
        "the producer never heard back: present or absent, both allowed (counted)",
    ),
]


def _copy_json(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")
    return value


def _fetch(cur: Any, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    cur.execute(query, params or {})
    names = [d[0] for d in cur.description]
    return [{n: _copy_json(v) for n, v in zip(names, row, strict=True)} for row in cur.fetchall()]


def classify_layers(
    cur: Any, run_id: str, sink_table: str, sink_counts: dict[str, int], audited: bool
) -> dict[str, Any]:
    """The layered result: {classes: {name: {layer, count, valid, definition, witnesses}}, unseen: ...}.
    `sink_counts`: the set checker's counts (duplicate, extra, failed_present, indeterminate)."""
    params = {"run_id": run_id}
    table = sql.Identifier(sink_table).as_string(cur)
    found: dict[str, tuple[int, list[dict[str, Any]]]] = {}
    notes: list[str] = []
    # Ledger ranges whose ids are not all in the sink: the only ones whose log ids need a sink lookup.
    cur.execute(
        """CREATE TEMP TABLE chk_short ON COMMIT DROP AS
           SELECT r.lo FROM chk_ranges r LEFT JOIN chk_hits h ON h.lo = r.lo
           WHERE coalesce(h.present, 0) < r.hi - r.lo + 1"""
    )
    cur.execute("CREATE UNIQUE INDEX ON chk_short (lo)")
    # The run's span per partition: acknowledged positions, widened by what the audit found.
    cur.execute(
        f"""CREATE TEMP TABLE chk_span ON COMMIT DROP AS
            SELECT part, min(lo_off) AS lo_off, max(hi_off) AS hi_off FROM (
                SELECT part, off AS lo_off, off + (hi - lo) AS hi_off FROM chk_ranges
                WHERE cls = {ACKED} AND off >= 0
                UNION ALL
                -- per audited partition, through the index: no scan of the run's records
                SELECT a.kafka_partition,
                       (SELECT min(k.kafka_offset) FROM kafka_log k
                         WHERE k.run_id = a.run_id AND k.kafka_partition = a.kafka_partition),
                       (SELECT max(k.kafka_offset) FROM kafka_log k
                         WHERE k.run_id = a.run_id AND k.kafka_partition = a.kafka_partition)
                FROM kafka_log_audits a WHERE a.run_id = %(run_id)s
            ) s WHERE lo_off IS NOT NULL GROUP BY part""",
        params,
    )
    _batches(cur, params)
    if audited:
        _kafka(cur, params, table, found)
    else:
        notes.append("Kafka layer not measured: the log was not audited (see `kafka_audit`).")
        cur.execute(
            "CREATE TEMP TABLE chk_log_odd (id bigint, part int, off bigint, lo bigint, cls smallint,"
            " copies bigint, at_ack boolean, short boolean, acked_at text) ON COMMIT DROP"
        )
        cur.execute("CREATE TEMP TABLE chk_kafka_absent (id bigint) ON COMMIT DROP")
    _spark(cur, params, table, found, audited, notes)
    _sink(cur, params, table, sink_counts, found)
    classes: dict[str, Any] = {}
    for layer, name, ok, definition in CLASSES:
        count, witnesses = found.get(name, (0, []))
        classes[name] = {
            "layer": layer,
            "count": count,
            "allowed": ok,
            "definition": definition,
            "witnesses": witnesses,
        }
    missing = _missing_by_layer(cur, params, table, audited)
    return {"audited": audited, "classes": classes, "missing_by_layer": missing, "notes": notes}


def _batches(cur: Any, params: dict[str, Any]) -> None:
    """chk_batches: per partition, each committed batch's first execution's [start, end) that meets the
    run's span, in commit order (seq)."""
    cur.execute(
        """CREATE TEMP TABLE chk_batches ON COMMIT DROP AS
           SELECT b.query_id, b.batch_id, e.key::int AS part,
                  (b.start_offsets ->> e.key)::bigint AS start_off, e.value::bigint AS end_off,
                  m.committed_at, m.replays,
                  row_number() OVER (PARTITION BY e.key::int
                                     ORDER BY m.committed_at, b.query_id, b.batch_id) AS seq
           FROM sink_batch_reads b
           JOIN sink_batches m ON m.query_id = b.query_id AND m.batch_id = b.batch_id
           CROSS JOIN LATERAL jsonb_each_text(b.end_offsets) e
           JOIN chk_span s ON s.part = e.key::int
           WHERE b.execution = 0
             AND e.value::bigint > s.lo_off
             AND coalesce((b.start_offsets ->> e.key)::bigint, e.value::bigint - 1) <= s.hi_off"""
    )
    cur.execute("CREATE INDEX ON chk_batches (part, start_off, end_off)")


def _kafka(cur: Any, params: dict[str, Any], table: str, found: dict[str, Any]) -> None:
    # One pass over the run's audited log, no sort: a record sits where its ack said exactly when an
    # acknowledged range of its partition has the same id - offset and contains its id (a hash join).
    # Records that do (in ranges the sink holds whole) are only counted per range; the others are kept
    # one by one.
    cur.execute(
        f"""CREATE TEMP TABLE chk_acked ON COMMIT DROP AS
            SELECT lo, hi, part, off, lo - off AS delta FROM chk_ranges WHERE cls = {ACKED} AND off >= 0"""
    )
    cur.execute("ANALYZE chk_acked")
    cur.execute(
        """
        CREATE TEMP TABLE chk_log_pass ON COMMIT DROP AS
        WITH placed AS (
            SELECT k.kafka_partition AS part, k.kafka_offset AS off, k.event_id AS id, a.lo,
                   (a.lo IS NOT NULL) AS at_ack, (s.lo IS NOT NULL) AS short
            FROM kafka_log k
            LEFT JOIN chk_acked a ON a.part = k.kafka_partition AND a.delta = k.event_id - k.kafka_offset
                                 AND k.event_id BETWEEN a.lo AND a.hi
            LEFT JOIN chk_short s ON s.lo = a.lo
            WHERE k.run_id = %(run_id)s
        ), keyed AS (
            SELECT at_ack AND NOT short AS counted, lo, at_ack,
                   CASE WHEN at_ack AND NOT short THEN NULL ELSE part END AS part,
                   CASE WHEN at_ack AND NOT short THEN NULL ELSE off END AS off,
                   CASE WHEN at_ack AND NOT short THEN NULL ELSE id END AS id
            FROM placed
        )
        SELECT counted, lo, at_ack, part, off, id, count(*) AS n FROM keyed
        GROUP BY counted, lo, at_ack, part, off, id""",
        params,
    )
    cur.execute(
        """CREATE TEMP TABLE chk_log_hits ON COMMIT DROP AS
           SELECT lo, sum(n) AS at_ack FROM chk_log_pass WHERE at_ack GROUP BY lo"""
    )
    # The kept records, each with its id's own ledger range (by id), and how many positions hold the id.
    cur.execute(
        f"""
        CREATE TEMP TABLE chk_log_odd ON COMMIT DROP AS
        WITH byid AS (
            SELECT k.id, k.part, k.off, k.at_ack, r.lo, r.cls, (s.lo IS NOT NULL) AS short,
                   CASE WHEN r.cls = {ACKED} AND r.off >= 0 THEN r.part END AS apart,
                   CASE WHEN r.cls = {ACKED} AND r.off >= 0 THEN r.off + (k.id - r.lo) END AS aoff
            FROM chk_log_pass k
            LEFT JOIN LATERAL (
                SELECT lo, hi, cls, part, off FROM chk_ranges WHERE lo <= k.id ORDER BY lo DESC LIMIT 1
            ) r ON k.id <= r.hi
            LEFT JOIN chk_short s ON s.lo = r.lo
            WHERE NOT k.counted
        )
        SELECT b.id, b.part, b.off, b.lo, b.cls,
               count(*) OVER (PARTITION BY b.id)
               + CASE WHEN b.aoff IS NOT NULL AND NOT bool_or(b.at_ack) OVER (PARTITION BY b.id)
                       AND EXISTS (SELECT 1 FROM kafka_log k WHERE k.run_id = %(run_id)s
                                   AND k.kafka_partition = b.apart AND k.kafka_offset = b.aoff
                                   AND k.event_id = b.id)
                      THEN 1 ELSE 0 END AS copies,
               b.at_ack, b.short, b.apart || ':' || b.aoff AS acked_at
        FROM byid b""",
        params,
    )
    cur.execute("CREATE INDEX ON chk_log_odd (id)")
    cur.execute("ANALYZE chk_log_odd")
    # Acknowledged ids not found at their acknowledged position: expand just those ranges.
    cur.execute(
        f"""
        CREATE TEMP TABLE chk_kafka_absent ON COMMIT DROP AS
        SELECT x.id, x.part, x.off, x.id_there,
               EXISTS (SELECT 1 FROM chk_log_odd o WHERE o.id = x.id) AS elsewhere,
               a.log_start, a.log_end, a.audited_at
        FROM (
            SELECT g.id, r.part, r.off + (g.id - r.lo) AS off,
                   (SELECT k.event_id FROM kafka_log k
                     WHERE k.run_id = %(run_id)s AND k.kafka_partition = r.part
                       AND k.kafka_offset = r.off + (g.id - r.lo) LIMIT 1) AS id_there
            FROM chk_ranges r
            LEFT JOIN chk_log_hits h ON h.lo = r.lo
            CROSS JOIN LATERAL generate_series(r.lo, r.hi) AS g(id)
            WHERE r.cls = {ACKED} AND r.off >= 0 AND coalesce(h.at_ack, 0) < r.hi - r.lo + 1
        ) x
        LEFT JOIN kafka_log_audits a ON a.run_id = %(run_id)s AND a.kafka_partition = x.part
        WHERE x.id_there IS DISTINCT FROM x.id""",
        params,
    )
    cols = "id, part AS partition, off AS offset"
    lost = "NOT elsewhere AND off >= log_start AND off < log_end - 1"
    found["lost-write"] = _class(
        cur,
        f"FROM chk_kafka_absent WHERE {lost}",
        f"{cols}, id_there AS id_at_offset, log_end, audited_at AS time",
    )
    found["log-absent"] = _class(
        cur,
        f"FROM chk_kafka_absent WHERE NOT elsewhere AND NOT coalesce({lost}, false)",
        f"{cols}, log_start, log_end, audited_at AS time",
    )
    found["inconsistent-offset"] = _class(
        cur,
        """FROM chk_kafka_absent a WHERE (a.id_there IS NOT NULL AND a.id_there <> a.id) OR a.elsewhere""",
        "a.id, a.part AS partition, a.off AS acked_offset, a.id_there AS id_at_acked_offset,"
        " (SELECT array_agg(o.part || ':' || o.off) FROM chk_log_odd o WHERE o.id = a.id) AS found_at",
    )
    found["log-duplicate"] = _class(
        cur,
        "FROM (SELECT id, array_agg(part || ':' || off ORDER BY part, off) AS positions,"
        " min(acked_at) AS acked_at FROM chk_log_odd WHERE copies > 1 GROUP BY id) d",
        "id, positions, acked_at",
    )


def _spark(
    cur: Any, params: dict[str, Any], table: str, found: dict[str, Any], audited: bool, notes: list[str]
) -> None:
    cur.execute("SELECT count(*) FROM chk_batches")
    if not cur.fetchone()[0]:
        notes.append(
            "Spark layer not measured: no batch of the run's span recorded the offsets it read "
            "(sink_batch_reads)."
        )
    # Gaps and overlaps between consecutive committed batches (commit order) in each partition; the
    # first batch is compared with the run's first offset, so a run whose start was never read shows.
    cur.execute(
        """
        CREATE TEMP TABLE chk_seams ON COMMIT DROP AS
        SELECT b.part, b.query_id, b.batch_id, b.start_off, b.committed_at,
               p.query_id AS prev_query_id, p.batch_id AS prev_batch_id,
               coalesce(p.end_off, s.lo_off) AS prev_end
        FROM chk_batches b
        JOIN chk_span s ON s.part = b.part
        LEFT JOIN chk_batches p ON p.part = b.part AND p.seq = b.seq - 1
        WHERE b.start_off IS NOT NULL AND b.start_off <> coalesce(p.end_off, least(s.lo_off, b.start_off))"""
    )
    in_gap = (
        "(SELECT count(*) FROM kafka_log k WHERE k.run_id = %(run_id)s AND k.kafka_partition = g.part"
        " AND k.kafka_offset >= g.prev_end AND k.kafka_offset < g.start_off)"
    )
    found["offset-gap"] = _class(
        cur,
        "FROM chk_seams g WHERE g.start_off > g.prev_end",
        "g.part AS partition, g.prev_end AS from_offset, g.start_off AS to_offset,"
        " g.prev_query_id, g.prev_batch_id, g.query_id, g.batch_id, g.committed_at AS time,"
        f" {in_gap} AS run_ids_in_gap",
        params,
    )
    found["offset-overlap"] = _class(
        cur,
        "FROM chk_seams g WHERE g.start_off < g.prev_end",
        "g.part AS partition, g.start_off AS from_offset, g.prev_end AS to_offset,"
        " g.prev_query_id, g.prev_batch_id, g.query_id, g.batch_id, g.committed_at AS time",
    )
    # Log records of the run that the sink does not hold (only ledger ranges short in the sink are
    # looked up), each placed against the batches.
    cur.execute(
        f"""
        CREATE TEMP TABLE chk_unsunk ON COMMIT DROP AS
        SELECT o.id, o.part, o.off, o.cls,
               (SELECT b.query_id || '/' || b.batch_id FROM chk_batches b
                 WHERE b.part = o.part AND b.start_off <= o.off AND o.off < b.end_off
                 ORDER BY b.seq LIMIT 1) AS batch,
               (SELECT b.committed_at FROM chk_batches b
                 WHERE b.part = o.part AND b.start_off <= o.off AND o.off < b.end_off
                 ORDER BY b.seq LIMIT 1) AS batch_committed_at,
               o.off >= (SELECT max(b.end_off) FROM chk_batches b WHERE b.part = o.part) AS past_last
        FROM chk_log_odd o
        WHERE (o.short OR o.cls IS NULL)
          AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.run_id = %(run_id)s AND t.event_id = o.id)""",
        params,
    )
    cols = "id, part AS partition, off AS offset"
    found["skipped"] = _class(
        cur,
        "FROM chk_unsunk WHERE batch IS NOT NULL",
        f"{cols}, batch, batch_committed_at AS time",
    )
    # past_last is NULL where no batch of the partition recorded its offsets: not placed (a note).
    found["unread"] = _class(cur, "FROM chk_unsunk WHERE batch IS NULL AND past_last", cols)
    found["sink-ahead-of-checkpoint"] = _class(
        cur,
        "FROM (SELECT DISTINCT query_id, batch_id, replays, committed_at FROM chk_batches"
        " WHERE replays > 0) b",
        "b.query_id, b.batch_id, b.replays, b.committed_at AS time",
    )
    found["replay-divergence"] = _class(
        cur,
        """FROM (SELECT r.query_id, r.batch_id, min(r.committed_at) AS first_at,
                       max(r.committed_at) AS last_at,
                       count(DISTINCT (coalesce(r.end_offsets, '{}'::jsonb), r.rows_digest)) AS versions,
                       count(*) AS executions
                FROM sink_batch_reads r
                JOIN (SELECT DISTINCT query_id, batch_id FROM chk_batches) b
                  ON b.query_id = r.query_id AND b.batch_id = r.batch_id
                GROUP BY r.query_id, r.batch_id HAVING count(DISTINCT (coalesce(r.end_offsets, '{}'::jsonb),
                                                                      r.rows_digest)) > 1) d""",
        "d.query_id, d.batch_id, d.executions, d.versions, d.first_at AS time, d.last_at",
    )
    if audited:
        cur.execute(
            "SELECT count(*) FROM chk_unsunk WHERE batch IS NULL AND coalesce(NOT past_last, true)"
            " AND NOT EXISTS"
            " (SELECT 1 FROM chk_seams g WHERE g.part = chk_unsunk.part AND g.start_off > g.prev_end"
            " AND chk_unsunk.off >= g.prev_end AND chk_unsunk.off < g.start_off)"
        )
        orphans = int(cur.fetchone()[0])
        if orphans:
            notes.append(
                f"{orphans} log records of the run missing from the sink are in no recorded batch, no gap "
                "and not past the last batch: not placed (batches without recorded offsets)."
            )


def _sink(
    cur: Any, params: dict[str, Any], table: str, counts: dict[str, int], found: dict[str, Any]
) -> None:
    """The set checker's sink classes, with each witness's row(s): where it came from and which batch."""
    # One witness per id: where it came from, every batch that wrote it, its deliveries and times.
    rows = (
        "SELECT t.event_id AS id, min(t.kafka_partition) AS partition, min(t.kafka_offset) AS offset,"
        " min(t.query_id || '/' || t.batch_id) AS batch,"
        " array_agg(DISTINCT t.query_id || '/' || t.batch_id) AS batches, sum(t.deliveries) AS deliveries,"
        " min(t.committed_at) AS time, max(t.committed_at) AS last_time,"
        " max(coalesce(m.replays, 0)) AS batch_replays"
        f" FROM {table} t LEFT JOIN sink_batches m ON m.query_id = t.query_id AND m.batch_id = t.batch_id"
        " WHERE t.run_id = %(run_id)s AND t.event_id = ANY(%(ids)s) GROUP BY t.event_id ORDER BY t.event_id"
    )
    for name, key in (("duplicate", "duplicate"), ("extra", "extra"), ("failed-present", "failed_present")):
        ids = counts.get(f"sample_{key}", [])
        witnesses = _fetch(cur, rows, {**params, "ids": list(ids)[:WITNESSES]}) if ids else []
        found[name] = (counts.get(key, 0), witnesses)
    found["indeterminate"] = (counts.get("indeterminate_present", 0), [])


def _class(
    cur: Any, from_where: str, columns: str, params: dict[str, Any] | None = None
) -> tuple[int, list[dict[str, Any]]]:
    cur.execute(f"SELECT count(*) {from_where}", params or {})
    count = int(cur.fetchone()[0])
    if not count:
        return 0, []
    return count, _fetch(cur, f"SELECT {columns} {from_where} ORDER BY 1, 2 LIMIT {WITNESSES}", params)


def _missing_by_layer(cur: Any, params: dict[str, Any], table: str, audited: bool) -> dict[str, int]:
    """Acknowledged ids absent from the sink, each at the layer that explains it."""
    if not audited:
        return {}
    cur.execute(
        f"""
        SELECT
          (SELECT count(*) FROM chk_kafka_absent WHERE NOT elsewhere
             AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.run_id = %(run_id)s AND t.event_id = id)),
          (SELECT count(*) FROM chk_unsunk WHERE cls = {ACKED} AND batch IS NOT NULL),
          (SELECT count(*) FROM chk_unsunk WHERE cls = {ACKED} AND batch IS NULL AND NOT past_last),
          (SELECT count(*) FROM chk_unsunk WHERE cls = {ACKED} AND batch IS NULL AND past_last),
          (SELECT count(*) FROM chk_unsunk WHERE cls = {ACKED} AND past_last IS NULL)""",
        params,
    )
    kafka, skipped, gap, unread, unplaced = (int(v) for v in cur.fetchone())
    return {
        "kafka": kafka,
        "spark_skipped": skipped,
        "spark_gap": gap,
        "spark_unread": unread,
        "not_placed": unplaced,
    }
