"""Progress output of long-running commands: a live rich line on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from rich.console import Console
from rich.live import Live
from rich.text import Text


@dataclass
class ProducerStats:
    sent: int
    acked: int
    failed: int
    indeterminate: int
    in_flight: int
    elapsed_s: float
    last_error: str | None = None


class Progress(Protocol):
    def update(self, stats: ProducerStats) -> None: ...

    def close(self, stats: ProducerStats) -> None: ...


class _AckRate:
    """Acks per second over the last few seconds (not since start: outages should show)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self.samples: deque[tuple[float, int]] = deque()

    def __call__(self, acked: int) -> float:
        now = time.monotonic()
        self.samples.append((now, acked))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window_s:
            self.samples.popleft()
        t0, a0 = self.samples[0]
        return (acked - a0) / (now - t0) if now > t0 else 0.0


def _line(stats: ProducerStats, rate: float) -> str:
    text = (
        f"{stats.elapsed_s:6.1f}s {rate:7.0f}/s sent {stats.sent} acked {stats.acked} "
        f"in flight {stats.in_flight} failed {stats.failed} indeterminate {stats.indeterminate}"
    )
    if stats.last_error:
        text += f"  last error: {stats.last_error}"
    return text


class RichProgress:
    def __init__(self) -> None:
        self._rate = _AckRate()
        self._live = Live(Text(""), console=Console(), refresh_per_second=4, transient=False)
        self._live.start()

    def update(self, stats: ProducerStats) -> None:
        # One line that never wraps: a narrow terminal gets it cut, not smeared over two lines.
        self._live.update(Text(_line(stats, self._rate(stats.acked)), no_wrap=True, overflow="ellipsis"))

    def close(self, stats: ProducerStats) -> None:
        self.update(stats)
        self._live.stop()


class LogProgress:
    """One plain line every `interval_s` seconds, for logs and CI."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self._rate = _AckRate()
        self._next = time.monotonic() + interval_s

    def update(self, stats: ProducerStats) -> None:
        rate = self._rate(stats.acked)
        if time.monotonic() >= self._next:
            self._next = time.monotonic() + self.interval_s
            print(_line(stats, rate), flush=True)

    def close(self, stats: ProducerStats) -> None:
        print(_line(stats, self._rate(stats.acked)), flush=True)


def make_progress(interval_s: float = 10.0) -> Progress:
    return RichProgress() if sys.stdout.isatty() else LogProgress(interval_s)


class Steps:
    """Where a command of long steps is (validate on millions of ids, settling): on a terminal one live
    line on stderr (step, elapsed seconds), gone when done; elsewhere a plain stderr line every
    `interval_s` while a step runs longer than that, so short runs (and their errors) print nothing extra."""

    def __init__(self, what: str, interval_s: float = 10.0, tty: bool | None = None) -> None:
        self.what = what
        self.interval_s = interval_s
        self._console = Console(stderr=True)
        self._tty = self._console.is_terminal if tty is None else tty
        self._name = ""
        self._detail = ""
        self._started = time.monotonic()
        self._live: Live | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> Steps:
        if self._tty:
            # Refreshed by rich's own thread, so the seconds count on while a step blocks in a query.
            self._live = Live(self, console=self._console, refresh_per_second=4, transient=True)
            self._live.start()
        else:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._live is not None:
            self._live.stop()
        if self._ticker is not None:
            self._ticker.join()

    def step(self, name: str, detail: str = "") -> None:
        self._name, self._detail, self._started = name, detail, time.monotonic()

    def detail(self, text: str) -> None:
        self._detail = text

    def line(self) -> str:
        text = f"{self.what}: {self._name} {time.monotonic() - self._started:.0f} s"
        return f"{text} ({self._detail})" if self._detail else text

    def __rich__(self) -> Text:
        return Text(self.line(), no_wrap=True, overflow="ellipsis")

    def _tick(self) -> None:
        while not self._stop.wait(self.interval_s):
            if self._name and time.monotonic() - self._started >= self.interval_s:
                print(self.line(), file=sys.stderr, flush=True)
