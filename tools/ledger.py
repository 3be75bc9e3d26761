"""The producer ledger: what was attempted, acknowledged, failed, or left indeterminate, as id ranges.

File `ledger.log` in the run directory, append-only text, one record per line (`ts` = epoch ms):

    chaosbed-ledger 1 <run_id>            header (first line)
    S <ts> <session> <pid>                a producer session started
    R <ts> <first> <last>                 ids first..last reserved: written and fsynced BEFORE any is sent
    A <ts> <first> <last> <part> <off>    acked: ids first..last sit at offsets off..off+(last-first) of
                                          partition part (off -1: unknown)
    F <ts> <first> <last> <error>         definitely not persisted (rejected by the broker, or a local
                                          error before any send, e.g. unknown topic)
    I <ts> <first> <last> <error>         the client reported an error whose outcome is unknown
    H <ts>                                heartbeat: the producer was alive (about once a second)
    C <ts> <next_id>                      clean stop: reserved ids >= next_id were never sent

Semantics (Jepsen's ok / fail / info): attempted = reserved ids minus those released by C;
indeterminate = attempted - acked - failed. That includes the ids a SIGKILLed producer had in flight
or had reserved but not sent: they may or may not be in Kafka, are never re-sent, and are valid
whether present or absent. Ack records are fsynced in small batches and the producer only reports
durable counts, so an acknowledgement it ever showed survives a SIGKILL. A torn last line (a write
cut by a kill) carries nothing durable and is ignored, and dropped when the ledger is reopened.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools import ranges
from tools.errors import ToolError
from tools.ranges import Range
from tools.run.layout import LEDGER_FILE

MAGIC = "chaosbed-ledger"
VERSION = 1
HEARTBEAT_MS = 1000

# Classes of a classified range, shared with the validator's SQL.
ACKED, FAILED, INDETERMINATE = 1, 2, 3


class LedgerError(ToolError):
    """The ledger is missing, unreadable or inconsistent: bad input (exit 2)."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Session:
    number: int
    pid: int
    start_ms: int
    last_ms: int
    clean: bool = False


@dataclass(frozen=True)
class AckRange:
    first: int
    last: int
    partition: int
    offset: int
    ts_ms: int


@dataclass(frozen=True)
class OutcomeRange:
    first: int
    last: int
    error: str
    ts_ms: int


@dataclass
class LedgerState:
    run_id: str
    sessions: list[Session] = field(default_factory=list)
    reserved: list[Range] = field(default_factory=list)
    acks: list[AckRange] = field(default_factory=list)
    failures: list[OutcomeRange] = field(default_factory=list)
    infos: list[OutcomeRange] = field(default_factory=list)
    next_id: int = 0

    def attempted(self) -> list[Range]:
        return ranges.normalize(self.reserved)

    def acked(self) -> list[Range]:
        return ranges.normalize((a.first, a.last) for a in self.acks)

    def failed(self) -> list[Range]:
        return ranges.normalize((f.first, f.last) for f in self.failures)

    def indeterminate(self) -> list[Range]:
        return ranges.subtract(ranges.subtract(self.attempted(), self.acked()), self.failed())

    def classified(self) -> list[tuple[int, int, int, int | None, int | None]]:
        """Disjoint (lo, hi, class, partition, offset) ranges covering every attempted id, by lo."""
        rows: list[tuple[int, int, int, int | None, int | None]] = [
            (a.first, a.last, ACKED, a.partition, a.offset) for a in self.acks
        ]
        rows += [(lo, hi, FAILED, None, None) for lo, hi in self.failed()]
        rows += [(lo, hi, INDETERMINATE, None, None) for lo, hi in self.indeterminate()]
        rows.sort()
        return rows

    def counts(self) -> dict[str, int]:
        return {
            "attempted": ranges.total(self.attempted()),
            "acked": ranges.total(self.acked()),
            "failed": ranges.total(self.failed()),
            "indeterminate": ranges.total(self.indeterminate()),
        }


def ledger_path(run_dir: Path) -> Path:
    return run_dir / LEDGER_FILE


def _parse(text: str, path: Path) -> LedgerState:
    """Parse and check a ledger; raises LedgerError naming the first bad line."""
    lines = text.split("\n")
    # The last element is "" when the file ends in a newline; otherwise it is a torn write: ignore it.
    lines = lines[:-1]
    if not lines:
        raise LedgerError(f"corrupt ledger {path}: empty (no header)")
    head = lines[0].split(" ")
    if len(head) != 3 or head[0] != MAGIC:
        raise LedgerError(f"corrupt ledger {path}: line 1 is not a '{MAGIC}' header")
    if head[1] != str(VERSION):
        raise LedgerError(f"unsupported ledger {path}: version {head[1]}, this tool reads {VERSION}")
    state = LedgerState(run_id=head[2])
    last_reservation: Range | None = None
    for lineno, line in enumerate(lines[1:], start=2):
        parts = line.split(" ")
        kind = parts[0]
        try:
            ts = int(parts[1])
            if kind == "A" and len(parts) == 6:
                first, last, part, off = (int(p) for p in parts[2:])
                _check_range(first, last)
                state.acks.append(AckRange(first, last, part, off, ts))
            elif kind in ("F", "I") and len(parts) == 5:
                first, last = int(parts[2]), int(parts[3])
                _check_range(first, last)
                target = state.failures if kind == "F" else state.infos
                target.append(OutcomeRange(first, last, parts[4], ts))
            elif kind == "R" and len(parts) == 4:
                first, last = int(parts[2]), int(parts[3])
                _check_range(first, last)
                if first != state.next_id:
                    raise ValueError(f"reservation starts at {first}, expected {state.next_id}")
                state.reserved.append((first, last))
                last_reservation = (first, last)
                state.next_id = last + 1
            elif kind == "C" and len(parts) == 3:
                next_id = int(parts[2])
                low = last_reservation[0] if last_reservation else 0
                if not low <= next_id <= state.next_id:
                    raise ValueError(f"release point {next_id} outside the last reservation")
                state.reserved = ranges.subtract(
                    ranges.normalize(state.reserved), [(next_id, state.next_id - 1)]
                )
                state.next_id = next_id
                if state.sessions:
                    state.sessions[-1].clean = True
            elif kind == "S" and len(parts) == 4:
                state.sessions.append(Session(int(parts[2]), int(parts[3]), ts, ts))
            elif kind == "H" and len(parts) == 2:
                pass
            else:
                raise ValueError(f"unknown record {line[:40]!r}")
        except (ValueError, IndexError) as exc:
            raise LedgerError(f"corrupt ledger {path}: line {lineno}: {exc}") from None
        if state.sessions:
            state.sessions[-1].last_ms = max(state.sessions[-1].last_ms, ts)
    _check_consistency(state, path)
    return state


def _check_range(first: int, last: int) -> None:
    if first < 0 or last < first:
        raise ValueError(f"bad range {first}..{last}")


def _check_consistency(state: LedgerState, path: Path) -> None:
    attempted = state.attempted()
    acked = [(a.first, a.last) for a in state.acks]
    failed = [(f.first, f.last) for f in state.failures]
    for name, rs in (("acked", acked), ("failed", failed)):
        merged = ranges.normalize(rs)
        if ranges.total(merged) != ranges.total(rs):
            raise LedgerError(f"corrupt ledger {path}: some ids are recorded as {name} twice")
        outside = ranges.subtract(merged, attempted)
        if outside:
            raise LedgerError(f"corrupt ledger {path}: {name} id {outside[0][0]} was never reserved")
    both = ranges.intersect(ranges.normalize(acked), ranges.normalize(failed))
    if both:
        raise LedgerError(f"corrupt ledger {path}: id {both[0][0]} is recorded as both acked and failed")


def load_ledger(run_dir: Path) -> LedgerState:
    path = ledger_path(run_dir)
    try:
        text = path.read_bytes().decode("ascii")
    except FileNotFoundError:
        raise LedgerError(
            f"no producer ledger in {run_dir}: {path} not found (run `tools produce` first)"
        ) from None
    except UnicodeDecodeError:
        raise LedgerError(f"corrupt ledger {path}: not ASCII text") from None
    except OSError as exc:
        raise LedgerError(f"unreadable ledger {path}: {exc.strerror}") from None
    return _parse(text, path)


class LedgerWriter:
    """Appends to the ledger of one run; one writer per run at a time (POSIX lock on the file).

    Delivery outcomes are buffered by `ack`/`fail`/`info` (cheap, called from delivery callbacks) and
    made durable by `flush` (write + fsync), which the producer calls every ~100 ms. The `durable_*`
    counters only count what has been fsynced.
    """

    def __init__(self, run_dir: Path, run_id: str, *, fsync: bool = True) -> None:
        self.path = ledger_path(run_dir)
        self._fsync = fsync
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LedgerError(f"cannot open ledger {self.path}: {exc.strerror}") from None
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                raise ToolError(
                    f"run {run_id} is being produced by another process ({self.path} is locked)"
                ) from None
            raise
        raw = self._read_all()
        if raw:
            cut = raw.rfind(b"\n") + 1
            if cut != len(raw):  # torn write from a killed producer: never durable, drop it
                os.ftruncate(self._fd, cut)
                raw = raw[:cut]
            try:
                self.state = _parse(raw.decode("ascii"), self.path)
            except UnicodeDecodeError:
                raise LedgerError(f"corrupt ledger {self.path}: not ASCII text") from None
            if self.state.run_id != run_id:
                raise LedgerError(f"ledger {self.path} belongs to run {self.state.run_id!r}, not {run_id!r}")
        else:
            self.state = LedgerState(run_id=run_id)
            self._write([f"{MAGIC} {VERSION} {run_id}\n"])
        os.lseek(self._fd, 0, os.SEEK_END)
        counts = self.state.counts()
        self.durable_acked = counts["acked"]
        self.durable_failed = counts["failed"]
        self.durable_info = ranges.total(ranges.normalize((i.first, i.last) for i in self.state.infos))
        self.start_id = self.state.next_id
        self.reserved_until = self.state.next_id  # exclusive
        self.session = len(self.state.sessions) + 1
        self._acks: list[tuple[int, int, int]] = []
        self._fails: list[tuple[int, str]] = []
        self._infos: list[tuple[int, str]] = []
        self._last_write_ms = 0
        self._closed = False
        self._write([f"S {now_ms()} {self.session} {os.getpid()}\n"], sync=True)

    def _read_all(self) -> bytes:
        chunks = []
        os.lseek(self._fd, 0, os.SEEK_SET)
        while chunk := os.read(self._fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)

    def _write(self, lines: list[str], sync: bool = True) -> None:
        data = "".join(lines).encode("ascii")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if sync and self._fsync:
            os.fsync(self._fd)
        self._last_write_ms = now_ms()

    def reserve(self, count: int) -> Range:
        """Reserve the next `count` ids; durable before this returns, so no id is sent twice."""
        first = self.reserved_until
        last = first + count - 1
        lines = self._pending_lines()
        lines.append(f"R {now_ms()} {first} {last}\n")
        self._write(lines)
        self._count_flushed()
        self.reserved_until = last + 1
        return (first, last)

    # Called from delivery callbacks: append only, no I/O.
    def ack(self, event_id: int, partition: int, offset: int) -> None:
        self._acks.append((event_id, partition, offset))

    def fail(self, event_id: int, error: str) -> None:
        self._fails.append((event_id, error))

    def info(self, event_id: int, error: str) -> None:
        self._infos.append((event_id, error))

    @property
    def pending(self) -> int:
        return len(self._acks) + len(self._fails) + len(self._infos)

    def _pending_lines(self) -> list[str]:
        ts = now_ms()
        lines: list[str] = []
        acks = sorted(self._acks)
        i = 0
        while i < len(acks):
            first, part, off = acks[i]
            last, last_off = first, off
            i += 1
            # Merge while ids and offsets both advance by one in the same partition.
            while i < len(acks):
                nid, npart, noff = acks[i]
                if (
                    nid != last + 1
                    or npart != part
                    or (noff != last_off + 1 and not (noff == last_off == -1))
                ):
                    break
                last, last_off = nid, noff
                i += 1
            lines.append(f"A {ts} {first} {last} {part} {off}\n")
        for kind, items in (("F", self._fails), ("I", self._infos)):
            for lo, hi, err in _group_by_error(sorted(items)):
                lines.append(f"{kind} {ts} {lo} {hi} {err}\n")
        return lines

    def _count_flushed(self) -> None:
        self.durable_acked += len(self._acks)
        self.durable_failed += len(self._fails)
        self.durable_info += len(self._infos)
        self._acks, self._fails, self._infos = [], [], []

    def flush(self) -> None:
        """Make buffered outcomes durable (write + fsync); a heartbeat if idle for a second."""
        lines = self._pending_lines()
        if not lines and now_ms() - self._last_write_ms < HEARTBEAT_MS:
            return
        if not lines:
            lines = [f"H {now_ms()}\n"]
        self._write(lines)
        self._count_flushed()

    def close(self, next_unsent: int) -> None:
        """Clean stop: flush, release reserved ids from `next_unsent` on, unlock."""
        if self._closed:
            return
        lines = self._pending_lines()
        next_unsent = max(min(next_unsent, self.reserved_until), self.start_id)
        lines.append(f"C {now_ms()} {next_unsent}\n")
        self._write(lines)
        self._count_flushed()
        self._closed = True
        os.close(self._fd)


def _group_by_error(items: list[tuple[int, str]]) -> list[tuple[int, int, str]]:
    out: list[tuple[int, int, str]] = []
    for event_id, err in items:
        if out and out[-1][1] + 1 == event_id and out[-1][2] == err:
            out[-1] = (out[-1][0], event_id, err)
        else:
            out.append((event_id, event_id, err))
    return out
