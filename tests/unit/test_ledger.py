"""Ledger format, compaction, durability and resume semantics."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tools.errors import ToolError
from tools.ledger import ACKED, FAILED, INDETERMINATE, LEDGER_FILE, LedgerError, LedgerWriter, load_ledger


def lines(run_dir: Path) -> list[str]:
    return (run_dir / LEDGER_FILE).read_text().splitlines()


def test_acks_are_stored_as_ranges(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path, "r1")
    assert w.reserve(100_000) == (0, 99_999)
    # Two sticky-partitioner batches, acked out of order: ids 0..49999 on p0, the rest on p2.
    for i in range(50_000, 100_000):
        w.ack(i, 2, 1000 + i - 50_000)
    for i in range(50_000):
        w.ack(i, 0, i)
    w.flush()
    w.close(100_000)
    acks = [ln for ln in lines(tmp_path) if ln.startswith("A ")]
    assert [ln.split()[2:] for ln in acks] == [["0", "49999", "0", "0"], ["50000", "99999", "2", "1000"]]
    state = load_ledger(tmp_path)
    assert state.counts() == {"attempted": 100_000, "acked": 100_000, "failed": 0, "indeterminate": 0}
    assert (tmp_path / LEDGER_FILE).stat().st_size < 500


def test_offset_discontinuity_splits_a_range(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path, "r1")
    w.reserve(4)
    for event_id, off in ((0, 10), (1, 11), (2, 13), (3, 14)):
        w.ack(event_id, 1, off)
    w.close(4)
    state = load_ledger(tmp_path)
    assert [(a.first, a.last, a.offset) for a in state.acks] == [(0, 1, 10), (2, 3, 13)]


def test_outcomes_classify_every_attempted_id(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path, "r1")
    w.reserve(10)
    for i in range(5):
        w.ack(i, 0, i)
    w.fail(5, "MSG_SIZE_TOO_LARGE")
    w.fail(6, "MSG_SIZE_TOO_LARGE")
    w.info(7, "_MSG_TIMED_OUT")
    w.close(9)  # id 9 was reserved but never sent: released
    state = load_ledger(tmp_path)
    assert state.attempted() == [(0, 8)]
    assert state.acked() == [(0, 4)]
    assert state.failed() == [(5, 6)]
    assert state.indeterminate() == [(7, 8)]  # 7 reported, 8 sent without an outcome
    assert [(c[0], c[1], c[2]) for c in state.classified()] == [
        (0, 4, ACKED),
        (5, 6, FAILED),
        (7, 8, INDETERMINATE),
    ]
    assert "F" in {ln[0] for ln in lines(tmp_path)} and any(
        ln.endswith("MSG_SIZE_TOO_LARGE") for ln in lines(tmp_path)
    )


def test_kill_without_close_loses_only_unflushed_acks_and_resumes_after_reservation(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path, "r1")
    w.reserve(100)
    for i in range(50):
        w.ack(i, 0, i)
    w.flush()  # durable
    assert w.durable_acked == 50
    for i in range(50, 60):
        w.ack(i, 0, i)  # buffered only: the "kill" below loses them
    # Simulated SIGKILL: no flush, no close. A reader sees exactly what was fsynced.
    state = load_ledger(tmp_path)
    assert state.acked() == [(0, 49)]
    assert state.indeterminate() == [(50, 99)]
    assert state.sessions[-1].clean is False

    w2 = LedgerWriter(tmp_path, "r1")  # restart with the same run id
    assert w2.session == 2
    assert w2.reserve(10) == (100, 109)  # never re-uses an attempted id
    for i in range(100, 110):
        w2.ack(i, 1, i - 100)
    w2.close(110)
    state = load_ledger(tmp_path)
    assert state.attempted() == [(0, 109)]
    assert state.acked() == [(0, 49), (100, 109)]
    assert state.indeterminate() == [(50, 99)]
    assert [s.clean for s in state.sessions] == [False, True]


def test_clean_stop_releases_unsent_ids_so_the_next_session_continues(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path, "r1")
    w.reserve(1000)
    for i in range(10):
        w.ack(i, 0, i)
    w.close(10)
    w2 = LedgerWriter(tmp_path, "r1")
    assert w2.reserve(5) == (10, 14)
    w2.close(12)
    state = load_ledger(tmp_path)
    assert state.attempted() == [(0, 11)]
    assert state.next_id == 12
    assert state.indeterminate() == [(10, 11)]


def test_torn_last_line_is_ignored_then_dropped(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path, "r1")
    w.reserve(10)
    w.ack(0, 0, 0)
    w.flush()
    with open(tmp_path / LEDGER_FILE, "a") as fh:
        fh.write("A 17000 1 9 0")  # cut mid-line by a kill: no newline
    assert load_ledger(tmp_path).acked() == [(0, 0)]
    w2 = LedgerWriter(tmp_path, "r1")
    w2.close(10)
    assert not any(ln.startswith("A 17000") for ln in lines(tmp_path))
    assert load_ledger(tmp_path).acked() == [(0, 0)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no header"),
        ("something else\n", "header"),
        ("chaosbed-ledger 9 r1\n", "version 9"),
        ("chaosbed-ledger 1 r1\nR 1 0 9\nA 1 zero 3 0 0\n", "line 3"),
        ("chaosbed-ledger 1 r1\nR 1 0 9\nX 1\n", "line 3: unknown record"),
        ("chaosbed-ledger 1 r1\nR 1 0 9\nA 1 5 12 0 0\n", "never reserved"),
        ("chaosbed-ledger 1 r1\nR 1 0 9\nA 1 0 3 0 0\nA 1 3 4 0 9\n", "twice"),
        ("chaosbed-ledger 1 r1\nR 1 0 9\nA 1 0 3 0 0\nF 1 2 2 MSG_SIZE_TOO_LARGE\n", "both acked and failed"),
        ("chaosbed-ledger 1 r1\nR 1 5 9\n", "reservation starts at 5"),
        ("chaosbed-ledger 1 r1\nR 1 0 9\nA 1 3 1 0 0\n", "bad range"),
    ],
)
def test_corrupt_ledgers_are_rejected_with_the_reason(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / LEDGER_FILE).write_text(content)
    with pytest.raises(LedgerError, match=message) as exc:
        load_ledger(tmp_path)
    assert exc.value.exit_code == 2
    assert "\n" not in str(exc.value)


def test_binary_garbage_and_missing_ledger(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="not found"):
        load_ledger(tmp_path)
    (tmp_path / LEDGER_FILE).write_bytes(b"chaosbed-ledger 1 r1\n\xff\xfe\n")
    with pytest.raises(LedgerError, match="not ASCII"):
        load_ledger(tmp_path)


def test_ledger_of_another_run_is_refused(tmp_path: Path) -> None:
    LedgerWriter(tmp_path, "r1").close(0)
    with pytest.raises(LedgerError, match="belongs to run 'r1'"):
        LedgerWriter(tmp_path, "r2")


def test_a_second_producer_on_the_same_run_is_refused(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
                from pathlib import Path
                from tools.ledger import LedgerWriter
                w = LedgerWriter(Path({str(tmp_path)!r}), "r1")
                print("locked", flush=True)
                time.sleep(30)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(ToolError, match="being produced by another process"):
            LedgerWriter(tmp_path, "r1")
    finally:
        holder.kill()  # our own child
        holder.wait()
    LedgerWriter(tmp_path, "r1").close(0)  # the lock died with its holder


def test_heartbeat_when_idle(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path, "r1")
    w.flush()  # nothing buffered and the session line was just written: no line
    assert not lines(tmp_path)[-1].startswith("H ")
    time.sleep(1.1)
    w.flush()
    last = lines(tmp_path)[-1]
    assert last.startswith("H ")
    w.close(0)
    assert load_ledger(tmp_path).sessions[0].last_ms >= int(last.split()[1])
