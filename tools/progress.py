"""Progress output of a long-running command: a live rich line on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
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
