"""Live progress of a run (`tools chaos watch`): where it is, from the run's own files and the sink.

Everything comes from what the run writes as it goes: experiment.jsonl (the phase), plan.json (the
schedule), chaos-journal.jsonl (faults applied and not yet undone), timeline.jsonl (faults that ended),
ledger.log (acks, read incrementally) and the sink table (commits and end-to-end latency, queried in a
thread so a stopped PostgreSQL never freezes the display).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

from tools.errors import ToolError
from tools.pgconn import connect
from tools.run.clock import ms_from_iso, now_ms
from tools.run.jsonl import read_jsonl
from tools.run.layout import (
    JOURNAL_FILE,
    LEDGER_FILE,
    RUN_JSON,
    VALIDATION_FILE,
)
from tools.run.meta import check_sink_table, load_run
from tools.run.phases import Phase, read_phases, read_plan
from tools.run.timeline import read_timeline

RATE_WINDOW_MS = 5000  # acks/s and commits/s are over the last 5 s: an outage shows within seconds
LIVE_PRODUCER_MS = 10_000  # a ledger record (heartbeats: every second) this recent = a producer is running


# ------------------------------------------------------------------------------------------------ ledger


class LedgerTail:
    """Reads ledger.log incrementally (the producer appends as it runs): totals and recent acks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.acked = self.failed = self.indeterminate = 0
        self.last_ms: int | None = None
        self.clean_stop = False  # the last record is a clean stop (C)
        self._acks: deque[tuple[int, int]] = deque()
        self._history: deque[tuple[int, int]] = deque()  # (ts, acked so far): acked as of a sink query

    def poll(self) -> None:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for the rest
        for raw in lines:
            self._record(raw.decode("utf-8", errors="replace").split())

    def _record(self, parts: list[str]) -> None:
        if len(parts) < 2 or not parts[1].isdigit():
            return  # the header, or a line torn by a kill
        tag, ts = parts[0], int(parts[1])
        self.last_ms = ts
        self.clean_stop = tag == "C"
        if tag in ("A", "F", "I") and len(parts) >= 4 and parts[2].isdigit() and parts[3].isdigit():
            n = int(parts[3]) - int(parts[2]) + 1
            if tag == "A":
                self.acked += n
                self._acks.append((ts, n))
                self._history.append((ts, self.acked))
                while self._history and self._history[0][0] < ts - 30_000:
                    self._history.popleft()
            elif tag == "F":
                self.failed += n
            else:
                self.indeterminate += n

    def acks_per_s(self, at_ms: int) -> float:
        while self._acks and self._acks[0][0] <= at_ms - RATE_WINDOW_MS:
            self._acks.popleft()
        return sum(n for _, n in self._acks) / (RATE_WINDOW_MS / 1000)

    def acked_at(self, at_ms: int) -> int:
        """Acks recorded up to at_ms, so unseen compares the ledger and the sink at the same moment."""
        before = [acked for ts, acked in self._history if ts <= at_ms]
        return before[-1] if before else self.acked

    def producing(self, at_ms: int) -> bool:
        return self.last_ms is not None and not self.clean_stop and at_ms - self.last_ms < LIVE_PRODUCER_MS


# -------------------------------------------------------------------------------------------------- sink


@dataclass(frozen=True)
class SinkStats:
    at_ms: int
    rows: int  # the run's rows in the sink table
    commits_per_s: float
    p99_ms: float | None  # end-to-end latency (committed_at - produced_at) of the last 5 s's commits
    last_commit_age_s: float | None


class SinkPoller:
    """Queries the sink once a second in a daemon thread; `latest`/`error` hold the last outcome."""

    def __init__(self, dsn: str | None, run_id: str, table: str, period_s: float = 1.0) -> None:
        self.dsn, self.run_id, self.table, self.period_s = dsn, run_id, check_sink_table(table), period_s
        self.latest: SinkStats | None = None
        self.error: str | None = None
        self.error_since_ms: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watch-sink", daemon=True)

    def start(self) -> SinkPoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _query(self, conn: Any) -> SinkStats:
        t = sql.Identifier(self.table)
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    """SELECT (SELECT count(*) FROM {t} WHERE run_id = %(r)s),
                              (SELECT extract(epoch FROM clock_timestamp() - max(committed_at))
                                 FROM {t} WHERE run_id = %(r)s),
                              count(*),
                              percentile_cont(0.99) WITHIN GROUP
                                  (ORDER BY extract(epoch FROM committed_at - produced_at) * 1000)
                       FROM {t}
                       WHERE run_id = %(r)s
                         AND committed_at > clock_timestamp() - %(w)s * interval '1 millisecond'"""
                ).format(t=t),
                {"r": self.run_id, "w": RATE_WINDOW_MS},
            )
            rows, age, recent, p99 = cur.fetchone()
        return SinkStats(
            now_ms(),
            int(rows),
            int(recent) / (RATE_WINDOW_MS / 1000),
            None if p99 is None else float(p99),
            None if age is None else float(age),
        )

    def _loop(self) -> None:
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = connect(self.dsn, what="sink")
                    conn.autocommit = True
                    with conn.cursor() as cur:
                        cur.execute("SET statement_timeout = 3000")
                self.latest, self.error, self.error_since_ms = self._query(conn), None, None
            except (ToolError, psycopg2.Error) as exc:
                self.error = " ".join(str(exc).split()) or type(exc).__name__
                self.error_since_ms = self.error_since_ms or now_ms()
                if conn is not None:
                    with contextlib.suppress(psycopg2.Error):
                        conn.close()
                    conn = None
            self._stop.wait(self.period_s)
        if conn is not None:
            conn.close()


# --------------------------------------------------------------------------------------------- the run


@dataclass
class Snapshot:
    run_id: str
    at_ms: int
    phase: str
    phase_left_s: float | None
    phase_elapsed_s: float | None  # shown for phases without a planned length (settle, validate, report)
    left_s: float | None  # until the producer stops (baseline + chaos + cooldown still to go)
    current: list[str]
    next_fault: str | None
    acked: int
    failed: int
    indeterminate: int
    acks_per_s: float
    sink: SinkStats | None
    sink_error: str | None
    ended: str | None  # why the run is over; None while it runs
    unseen: int | None = None  # acked (as of the sink's query) minus the run's rows in the sink
    verdict: str | None = None  # from validation.json once written


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fmt_s(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class RunWatch:
    """Everything the display needs about one run, refreshed by snapshot()."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.info = load_run(run_dir)
        self.run_id = str(self.info["run_id"])
        self.ledger = LedgerTail(run_dir / LEDGER_FILE)
        self.sink = SinkPoller(self.info.get("postgres_dsn"), self.run_id, self.info["sink_table"])

    def start(self, first_s: float = 3.0) -> RunWatch:
        """Start polling the sink; wait up to first_s for its first answer (so a finished run shows it)."""
        self.sink.start()
        deadline = time.monotonic() + first_s
        while self.sink.latest is None and self.sink.error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.sink.stop()

    def _settings(self, key: str) -> float:
        value = self.info.get("settings", {}).get(key)
        return float(value) if isinstance(value, int | float) else 0.0

    def _left(self, phases: list[Phase], plan: dict[str, Any] | None, at_ms: int) -> float | None:
        """Seconds until the producer stops: what is left of this phase plus the planned ones after it."""
        if not phases:
            return None
        current = phases[-1]
        later = {
            "start": ["baseline", "chaos", "cooldown"],
            "baseline": ["chaos", "cooldown"],
            "chaos": ["cooldown"],
        }.get(current.name)
        if later is None:
            return current.left_s(at_ms) if current.name == "cooldown" else None
        planned = {
            "baseline": self._settings("baseline_seconds"),
            "chaos": (plan or {}).get("phase_ms", 0) / 1000,
            "cooldown": self._settings("cooldown_seconds"),
        }
        return (current.left_s(at_ms) or 0.0) + sum(planned[p] for p in later)

    def _faults(
        self, phases: list[Phase], plan: dict[str, Any] | None, at_ms: int
    ) -> tuple[list[str], str | None]:
        journal = read_jsonl(self.run_dir / JOURNAL_FILE)
        undone = {r.get("fault_id") for r in journal if r.get("type") == "undone"}
        ended = {str(r.get("fault_id")) for r in read_timeline(self.run_dir)}
        current = []
        started: set[str] = set(ended)
        for r in journal:
            if r.get("type") != "intent":
                continue
            fid = str(r.get("fault_id"))
            started.add(fid)
            if fid in undone or fid in ended:
                continue
            since = (at_ms - int(r.get("start_ms") or at_ms)) / 1000
            name = r.get("name") or r.get("kind")
            current.append(f"{fid.rsplit('/', 1)[-1]} {name} on {r.get('target')} ({_fmt_s(since)})")
        # The chaos phase's start: the runner's run-start record, else the experiment's chaos phase.
        t0 = next((r.get("ts_ms") for r in journal if r.get("type") == "run-start"), None)
        if t0 is None:
            chaos = next((p for p in phases if p.name == "chaos"), None)
            base = next((p for p in phases if p.name == "baseline"), None)
            t0 = (
                chaos.start_ms
                if chaos
                else (base.start_ms + self._settings("baseline_seconds") * 1000 if base else None)
            )
        upcoming = None
        if plan and phases and phases[-1].name in ("start", "baseline", "chaos"):
            for row in plan.get("faults", []):
                fid = f"{self.run_id}/{row.get('id')}"
                if fid in started:
                    continue
                when = ""
                if isinstance(t0, int | float) and isinstance(row.get("at_ms"), int):
                    due_s = (t0 + row["at_ms"] - at_ms) / 1000
                    when = f" in {_fmt_s(due_s)}" if due_s > 0 or not row.get("trigger") else " now"
                if row.get("trigger"):
                    when += (
                        f", waiting for its trigger ({row['trigger']})"
                        if when == " now"
                        else f", {row['trigger']}"
                    )
                if row.get("not_applicable"):  # another Spark deployment's: recorded, nothing done
                    when += f" (not-applicable: {row['not_applicable']})"
                upcoming = f"{row.get('id')} {row.get('name')} on {row.get('target')}{when}"
                break
        return current, upcoming

    def ended(self, phases: list[Phase]) -> str | None:
        if phases:
            last = phases[-1]
            if last.name == "done":
                code = last.extra.get("exit_code")
                return "experiment done" + (f" (exit {code})" if code is not None else "")
            if last.pid is not None and not _alive(last.pid):
                return f"the experiment's process ({last.pid}) is gone"
            return None
        if (self.run_dir / VALIDATION_FILE).exists():
            return "validated"
        journal = read_jsonl(self.run_dir / JOURNAL_FILE)
        # A `tools chaos run` of its own: running while its runner is (a SIGKILLed one writes no run-end).
        starts = [r for r in journal if r.get("type") == "run-start"]
        chaos_running = (
            bool(starts)
            and not any(r.get("type") == "run-end" for r in journal)
            and isinstance(starts[-1].get("pid"), int)
            and _alive(starts[-1]["pid"])
        )
        if chaos_running or self.ledger.producing(now_ms()):
            return None
        return (
            "the producer stopped" if self.ledger.last_ms is not None else "nothing is running for this run"
        )

    def snapshot(self) -> Snapshot:
        at = now_ms()
        self.ledger.poll()
        phases = read_phases(self.run_dir)
        plan = read_plan(self.run_dir)
        current, upcoming = self._faults(phases, plan, at)
        phase_left = elapsed = None
        if phases:
            phase = phases[-1].name
            phase_left = phases[-1].left_s(at)
            elapsed = (at - phases[-1].start_ms) / 1000
        else:
            phase = "producing" if self.ledger.producing(at) else "-"
        ended = self.ended(phases)
        verdict = None
        if (self.run_dir / VALIDATION_FILE).exists():
            data = read_validation(self.run_dir)
            if data is not None:
                verdict = "VALID" if data.get("valid") else "INVALID: " + "; ".join(data.get("problems", []))
        sink = self.sink.latest
        error = self.sink.error
        if error and self.sink.error_since_ms:
            error = f"PostgreSQL unreachable for {_fmt_s((at - self.sink.error_since_ms) / 1000)}: {error}"
        return Snapshot(
            run_id=self.run_id,
            at_ms=at,
            phase=phase,
            phase_left_s=phase_left,
            phase_elapsed_s=elapsed,
            left_s=self._left(phases, plan, at),
            current=current,
            next_fault=upcoming,
            acked=self.ledger.acked,
            failed=self.ledger.failed,
            indeterminate=self.ledger.indeterminate,
            acks_per_s=self.ledger.acks_per_s(at),
            sink=sink,
            sink_error=error,
            ended=ended,
            unseen=None if sink is None else max(0, self.ledger.acked_at(sink.at_ms) - sink.rows),
            verdict=verdict,
        )


def read_validation(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / VALIDATION_FILE).read_text())
    except (OSError, ValueError):
        return None  # being written, or unreadable: the next refresh tries again
    return data if isinstance(data, dict) else None


# ----------------------------------------------------------------------------------------- finding a run


def in_progress(run_dir: Path) -> bool:
    watch = RunWatch(run_dir)
    watch.ledger.poll()
    return watch.ended(read_phases(run_dir)) is None


def _started_ms(run_dir: Path) -> int | None:
    """When the run began: run.json's started_at (written when the run is created)."""
    try:
        started = load_run(run_dir).get("started_at")
        return ms_from_iso(started) if isinstance(started, str) else None
    except (ToolError, ValueError):
        return None


def newest_in_progress(root: Path, since_ms: int | None = None) -> Path | None:
    """The most recently started run under the root that is still in progress (started after since_ms)."""
    if not root.is_dir():
        return None
    candidates = []
    for child in root.iterdir():
        started = _started_ms(child) if (child / RUN_JSON).is_file() else None
        if started is None or (since_ms is not None and started < since_ms - 1000):
            continue
        candidates.append((started, child))
    for _, child in sorted(candidates, reverse=True):
        try:
            if in_progress(child):
                return child
        except ToolError:
            continue
    return None


# ----------------------------------------------------------------------------------------------- display


def _phase(s: Snapshot) -> str:
    if s.phase_left_s is not None:
        return f"{s.phase} ({_fmt_s(s.phase_left_s)} left)"
    if s.phase_elapsed_s is not None and s.phase != "done":
        return f"{s.phase} (for {_fmt_s(s.phase_elapsed_s)})"
    return s.phase


def plain_line(s: Snapshot) -> str:
    parts = [_phase(s)]
    if s.left_s is not None:
        parts.append(f"producer stops in {_fmt_s(s.left_s)}")
    if s.current:
        parts.append("fault: " + "; ".join(s.current))
    if s.next_fault:
        parts.append("next: " + s.next_fault)
    parts.append(
        f"acks/s {s.acks_per_s:,.0f} (acked {s.acked:,}, failed {s.failed:,}, "
        f"indeterminate {s.indeterminate:,})"
    )
    if s.sink is not None:
        lag = f"p99 lag {s.sink.p99_ms:,.0f} ms" if s.sink.p99_ms is not None else "no commit in 5 s"
        parts.append(f"commits/s {s.sink.commits_per_s:,.0f} ({lag}; in sink {s.sink.rows:,})")
        parts.append(f"unseen {s.unseen or 0:,}")
    if s.sink_error:
        parts.append(s.sink_error)
    if s.verdict:
        parts.append(f"verdict {s.verdict}")
    return " | ".join(parts)


def rich_view(s: Snapshot) -> Any:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    phase = _phase(s)
    if s.left_s is not None:
        phase += f"  (producer stops in {_fmt_s(s.left_s)})"
    grid.add_row("phase", phase)
    grid.add_row("fault now", "\n".join(s.current) or "-")
    grid.add_row("next fault", s.next_fault or "-")
    grid.add_row(
        "producer",
        f"{s.acks_per_s:,.0f} acks/s  acked {s.acked:,}  failed {s.failed:,}  "
        f"indeterminate {s.indeterminate:,}",
    )
    if s.sink is not None:
        lag = f"p99 end-to-end {s.sink.p99_ms:,.0f} ms" if s.sink.p99_ms is not None else "no commit in 5 s"
        age = (
            f"  last commit {s.sink.last_commit_age_s:.0f} s ago"
            if s.sink.last_commit_age_s is not None
            else ""
        )
        grid.add_row("sink", f"{s.sink.commits_per_s:,.0f} commits/s  {lag}{age}  rows {s.sink.rows:,}")
        grid.add_row("verdict so far", f"unseen {s.unseen or 0:,} (acked - in sink, as of the last query)")
    else:
        grid.add_row("sink", "not queried yet")
    if s.sink_error:
        grid.add_row("", Text(s.sink_error, style="red"))
    if s.verdict:
        grid.add_row("verdict", Text(s.verdict, style="green" if s.verdict == "VALID" else "bold red"))
    if s.ended:
        grid.add_row("ended", s.ended)
    return Panel(grid, title=f"run {s.run_id}", title_align="left")
