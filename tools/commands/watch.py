"""`tools chaos watch [RUN]`: live progress of a run, once a second, until it ends."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from tools.commands.options import RunArgument, RunDirOption, RunIdOption, RunsRootOption
from tools.errors import ToolError, one_line_errors
from tools.run.clock import now_ms
from tools.run.layout import find_run, runs_root
from tools.watch import RunWatch, Snapshot, _alive, newest_in_progress, plain_line, rich_view

TICK_S = 1.0


class _Stopped(Exception):
    """SIGTERM (e.g. `make chaos` ending the watch): leave the display cleanly."""


def _on_term(_signum: int, _frame: FrameType | None) -> None:
    raise _Stopped


def _find(
    run: Path | None, run_dir: Path | None, run_id: str | None, root: Path | None, wait: bool, pid: int | None
) -> Path | None:
    if run is not None or run_dir is not None or run_id is not None:
        return find_run(run, run_dir, run_id, root)
    base = runs_root(root)
    if not wait:
        found = newest_in_progress(base)
        if found is None:
            raise ToolError(f"no run in progress under {base}: pass a run directory or run id")
        return found
    since = now_ms()
    while True:  # a run created after the watch started
        found = newest_in_progress(base, since_ms=since)
        if found is not None or (pid is not None and not _alive(pid)):
            return found
        time.sleep(0.5)


def _plain(watcher: RunWatch, interval: float, pid: int | None) -> Snapshot:
    last_key: tuple[str, tuple[str, ...]] | None = None
    next_at = 0.0
    while True:
        snap = watcher.snapshot()
        key = (snap.phase, tuple(c.split(" (")[0] for c in snap.current))
        done = snap.ended is not None or (pid is not None and not _alive(pid))
        if done or key != last_key or time.monotonic() >= next_at:
            print(plain_line(snap), flush=True)
            last_key, next_at = key, time.monotonic() + interval
        if done:
            return snap
        time.sleep(TICK_S)


def _live(watcher: RunWatch, pid: int | None) -> Snapshot:
    from rich.console import Console
    from rich.live import Live

    snap = watcher.snapshot()
    with Live(rich_view(snap), console=Console(), refresh_per_second=4, transient=False) as live:
        while snap.ended is None and (pid is None or _alive(pid)):
            time.sleep(TICK_S / 2)
            snap = watcher.snapshot()
            live.update(rich_view(snap))
    return snap


@one_line_errors
def watch(
    run: RunArgument = None,
    run_dir: RunDirOption = None,
    run_id: RunIdOption = None,
    runs_root: RunsRootOption = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Without RUN: wait for a run that starts after the watch.")
    ] = False,
    pid: Annotated[
        int | None, typer.Option("--pid", help="Also stop when this process is gone (e.g. the playbook).")
    ] = None,
    interval: Annotated[
        float,
        typer.Option(
            min=1, help="Without a terminal: seconds between plain lines (also one per phase or fault)."
        ),
    ] = 10.0,
) -> None:
    """Show where a run is, updating every second: phase, current and next fault, time left, acks/s,
    commits/s, end-to-end lag and the verdict so far (unseen = acked - in the sink). Exits when the run
    ends. RUN: a run directory or id; default: the newest run under the runs root still in progress.
    """
    previous = signal.signal(signal.SIGTERM, _on_term)
    watcher: RunWatch | None = None
    try:
        path = _find(run, run_dir, run_id, runs_root, wait, pid)
        if path is None:
            return  # --pid's process ended before any run started
        watcher = RunWatch(path).start()
        snap = _live(watcher, pid) if sys.stdout.isatty() else _plain(watcher, interval, pid)
        print(f"run {snap.run_id}: {snap.ended or 'watch stopped'}", flush=True)
    except _Stopped:
        return
    finally:
        if watcher is not None:
            watcher.stop()
        signal.signal(signal.SIGTERM, previous)
