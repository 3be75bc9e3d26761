"""The checker's set logic against a real PostgreSQL, rows written as the Spark sink would."""

from __future__ import annotations

import contextlib
from pathlib import Path

import psycopg2
import pytest
from fixtures.sink import Row, execute, insert_rows

from tools.ledger import LedgerWriter, load_ledger
from tools.validation import validate_run, wait_until_settled

RUN = "val-run"


def make_ledger(run_dir: Path) -> None:
    """ids 0..99: acked 0..79 (p0 then p1), failed 80..84, indeterminate 85..89 reported, 90..99 killed."""
    w = LedgerWriter(run_dir, RUN)
    w.reserve(100)
    for i in range(40):
        w.ack(i, 0, i)
    for i in range(40, 80):
        w.ack(i, 1, i - 40)
    for i in range(80, 85):
        w.fail(i, "MSG_SIZE_TOO_LARGE")
    for i in range(85, 90):
        w.info(i, "_MSG_TIMED_OUT")
    w.flush()  # and then "killed": 90..99 never get an outcome


def sink_rows(append: bool) -> list[Row]:
    rows = []
    for i in range(80):
        if i in (3, 17, 55):
            continue  # lost
        part, off = (0, i) if i < 40 else (1, i - 40)
        if i == 20:
            off = 99  # the sink saw id 20 at another offset than the producer's ack
        copies = {10: 3, 60: 2}.get(i, 1)
        batch = 0 if i < 50 else 1
        if append:
            rows += [Row(i, part, off, batch_id=batch)] * copies
        else:
            rows.append(Row(i, part, off, deliveries=copies, batch_id=batch))
    rows += [Row(150), Row(151), Row(81), Row(85), Row(95)]  # extra x2, failed-present, indeterminate x2
    return rows


@pytest.mark.parametrize("table", ["events", "events_append"])
def test_every_class_is_counted(tmp_path: Path, fresh_pg_dsn: str, table: str) -> None:
    make_ledger(tmp_path)
    insert_rows(fresh_pg_dsn, RUN, sink_rows(append=table == "events_append"), table)
    insert_rows(fresh_pg_dsn, "other-run", [Row(3), Row(17), Row(500)], table)  # must not leak in
    execute(
        fresh_pg_dsn,
        "INSERT INTO sink_batches (query_id, batch_id, rows_staged, rows_inserted, replays) VALUES "
        "('q-test', 0, 50, 48, 2), ('q-test', 1, 40, 40, 0), ('q-test', 9, 10, 0, 5)",
    )
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn:
        result = validate_run(conn, RUN, load_ledger(tmp_path), table)

    assert (result.attempted_count, result.acked_count, result.failed_count, result.indeterminate_count) == (
        100,
        80,
        5,
        15,
    )
    assert result.present_ids_count == 82
    assert result.rows_count == (85 if table == "events_append" else 82)
    assert result.missing_count == 3 and result.samples["missing"] == [3, 17, 55]
    assert result.extra_count == 2 and result.samples["extra"] == [150, 151]
    assert result.duplicate_count == 2 and result.samples["duplicate"] == [10, 60]
    assert result.duplicate_excess_deliveries == 3
    assert result.failed_present == 1 and result.samples["failed_present"] == [81]
    assert (result.indeterminate_present, result.indeterminate_absent) == (2, 13)
    assert result.offset_mismatch_count == 1 and result.samples["offset_mismatch"] == [20]
    # Batch 9 has no row of this run: not attributable, not counted.
    assert (result.replays_absorbed, result.upsert_absorbed_rows, result.attributed_batches) == (2, 2, 2)
    assert not result.valid
    data = result.to_json()
    assert data["valid"] is False and len(data["problems"]) == 4


def test_a_clean_run_is_valid_and_indeterminate_ids_are_allowed(tmp_path: Path, fresh_pg_dsn: str) -> None:
    make_ledger(tmp_path)
    rows = [Row(i, 0 if i < 40 else 1, i if i < 40 else i - 40) for i in range(80)]
    rows += [Row(i) for i in range(85, 100, 3)]  # some indeterminate ids arrived
    insert_rows(fresh_pg_dsn, RUN, rows)
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn:
        result = validate_run(conn, RUN, load_ledger(tmp_path), "events")
    assert result.valid, result.problems
    assert (result.missing_count, result.extra_count, result.duplicate_count, result.failed_present) == (
        0,
        0,
        0,
        0,
    )
    assert (result.indeterminate_present, result.indeterminate_absent) == (5, 10)
    assert result.offset_mismatch_count == 0
    assert all(not ids for ids in result.samples.values())


def test_empty_sink_means_everything_acked_is_missing(tmp_path: Path, fresh_pg_dsn: str) -> None:
    make_ledger(tmp_path)
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn:
        result = validate_run(conn, RUN, load_ledger(tmp_path), "events")
    assert result.missing_count == 80 and result.rows_count == 0
    assert result.samples["missing"] == list(range(20))


def test_rows_without_any_ledger_range_are_all_extra(tmp_path: Path, fresh_pg_dsn: str) -> None:
    LedgerWriter(tmp_path, RUN).close(0)  # a run that attempted nothing
    insert_rows(fresh_pg_dsn, RUN, [Row(i, deliveries=2 if i == 4 else 1) for i in range(5)])
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn:
        result = validate_run(conn, RUN, load_ledger(tmp_path), "events")
    assert result.attempted_count == 0
    assert result.extra_count == 5 and result.samples["extra"] == [0, 1, 2, 3, 4]
    assert result.duplicate_count == 1 and result.samples["duplicate"] == [4]


def test_ids_at_range_boundaries_are_classified_exactly(tmp_path: Path, fresh_pg_dsn: str) -> None:
    """Many small ranges; every boundary id present except two: the window labelling must not slip."""
    w = LedgerWriter(tmp_path, RUN)
    w.reserve(3000)
    for i in range(3000):
        w.ack(i, i // 7 % 3, i)  # a new range every 7 ids (partition changes)
    w.close(3000)
    state = load_ledger(tmp_path)
    assert len(state.acks) > 400
    rows = [Row(i, i // 7 % 3, i) for i in range(3000) if i not in (700, 1406)]
    insert_rows(fresh_pg_dsn, RUN, rows)
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn:
        result = validate_run(conn, RUN, state, "events")
    assert result.missing_count == 2 and result.samples["missing"] == [700, 1406]
    assert result.extra_count == 0 and result.offset_mismatch_count == 0


def test_wait_until_settled(fresh_pg_dsn: str) -> None:
    insert_rows(fresh_pg_dsn, RUN, [Row(1)])
    with contextlib.closing(psycopg2.connect(fresh_pg_dsn)) as conn:
        assert wait_until_settled(conn, RUN, "events", quiet_s=0.5, timeout_s=10)
