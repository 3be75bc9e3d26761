"""PNG plots for the report (matplotlib, Agg): throughput, latency, recovery time per fault.

Time axes are seconds since the run's start; fault windows are shaded, one colour per fault kind,
each labelled with its target.
Each function returns the file name it wrote, or None when there is nothing to plot.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from tools.recovery import FaultRecovery, SecondStats
from tools.report.signals import Signal
from tools.run.layout import LATENCY_PNG, RECOVERY_PNG, SIGNALS_PNG, THROUGHPUT_PNG, UNSEEN_PNG
from tools.run.timeline import Fault


def _shade_faults(
    ax: Axes, faults: Sequence[Fault], t0_ms: int, end_ms: int, kinds: Sequence[str] | None = None
) -> None:
    """`kinds`: the run's fault kinds, so a kind has one colour in every plot (default: those of `faults`)."""
    colours = plt.get_cmap("tab10")
    kinds = list(kinds) if kinds is not None else sorted({f.window.kind for f in faults})
    labelled: set[str] = set()
    for f in faults:
        w = f.window
        end = w.end_ms if w.end_ms is not None else end_ms
        colour = colours(kinds.index(w.kind) % 10)
        label = None if w.kind in labelled else f"fault: {w.kind}"
        labelled.add(w.kind)
        ax.axvspan((w.start_ms - t0_ms) / 1000, (end - t0_ms) / 1000, color=colour, alpha=0.18, label=label)
        # The window's target, written down its left edge: which service each shaded span hit.
        x = (w.start_ms - t0_ms) / 1000
        ax.text(x, 0.98, f" {w.target or w.kind}", transform=ax.get_xaxis_transform(), rotation=90,
                va="top", ha="left", fontsize="x-small", color=colour, alpha=0.9)  # fmt: skip


def _dense(points: Sequence[tuple[int, float]], fill: float) -> tuple[list[float], list[float]]:
    """Every second from the first to the last point; missing seconds get `fill`.

    Without this a line would be drawn straight across an outage, as if data had kept coming.
    """
    if not points:
        return [], []
    values = dict(points)
    secs = range(points[0][0], points[-1][0] + 1)
    return [float(sec) for sec in secs], [values.get(sec, fill) for sec in secs]


def _rel(secs: list[float], t0_ms: int) -> list[float]:
    return [(sec * 1000 - t0_ms) / 1000 for sec in secs]


def _save(fig: plt.Figure, path: Path, tight: bool = True) -> str:
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def plot_throughput(
    out_dir: Path,
    series: Sequence[SecondStats],
    acks: Sequence[tuple[int, int]],
    faults: Sequence[Fault],
    t0_ms: int,
    end_ms: int,
) -> str | None:
    if not series and not acks:
        return None
    fig, ax = plt.subplots(figsize=(11, 4))
    if series:
        x, y = _dense([(s.sec, s.rows) for s in series], 0.0)
        ax.plot(_rel(x, t0_ms), y, lw=1, label="rows committed/s")
    if acks:
        x, y = _dense(list(acks), 0.0)
        ax.plot(_rel(x, t0_ms), y, lw=1, alpha=0.7, label="producer acks/s")
    _shade_faults(ax, faults, t0_ms, end_ms)
    ax.set_xlabel("seconds since run start")
    ax.set_ylabel("events per second")
    ax.set_title("Throughput")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")  # outside: never over data
    return _save(fig, out_dir / THROUGHPUT_PNG)


def plot_latency(
    out_dir: Path,
    series: Sequence[SecondStats],
    faults: Sequence[Fault],
    t0_ms: int,
    end_ms: int,
    threshold_ms: float | None,
) -> str | None:
    points = [s for s in series if s.p99_ms is not None]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(11, 4))
    # NaN for seconds without commits: the lines break there instead of bridging the gap.
    nan = float("nan")
    x, p50 = _dense([(s.sec, s.p50_ms) for s in points], nan)
    _, p99 = _dense([(s.sec, s.p99_ms) for s in points], nan)
    ax.plot(_rel(x, t0_ms), p50, lw=1, marker=".", ms=2, label="p50")
    ax.plot(_rel(x, t0_ms), p99, lw=1, marker=".", ms=2, label="p99")
    if threshold_ms is not None:
        ax.axhline(threshold_ms, color="red", ls="--", lw=1, label="recovery threshold")
    _shade_faults(ax, faults, t0_ms, end_ms)
    ax.set_yscale("log")
    ax.set_xlabel("seconds since run start")
    ax.set_ylabel("end-to-end latency (ms, per second of commit)")
    ax.set_title("End-to-end latency (committed_at - produced_at)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")  # outside: never over data
    return _save(fig, out_dir / LATENCY_PNG)


def plot_recovery(out_dir: Path, recoveries: Sequence[FaultRecovery], end_ms: int) -> str | None:
    if not recoveries:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(recoveries) + 2), 4))
    labels = [f"{r.fault.fault_id}\n{r.fault.kind}" for r in recoveries]
    # A fault that never recovered is drawn up to the end of the data, hatched.
    heights = [r.recovery_s if r.recovered else (end_ms - r.fault.start_ms) / 1000 for r in recoveries]
    bars = ax.bar(
        range(len(recoveries)), heights, color=["tab:blue" if r.recovered else "tab:red" for r in recoveries]
    )
    for bar, r in zip(bars, recoveries, strict=True):
        text = f"{r.recovery_s:.1f} s" if r.recovered else "no recovery"
        if not r.recovered:
            bar.set_hatch("//")
        top = (bar.get_x() + bar.get_width() / 2, bar.get_height())
        ax.annotate(text, top, ha="center", va="bottom", fontsize="small")
    ax.set_xticks(range(len(recoveries)), labels, fontsize="small", rotation=45, ha="right")
    ax.set_ylabel("recovery time (s)")
    ax.set_title("Recovery time per fault")
    return _save(fig, out_dir / RECOVERY_PNG)


def unseen_series(series: Sequence[SecondStats], acks: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """unseen(t): ids acknowledged by the end of second t minus rows committed by then
    (Jepsen's unseen count; indeterminate ids that arrived make it an underestimate)."""
    acked = dict(acks)
    rows = {s.sec: s.rows for s in series}
    out, total = [], 0
    # Only the seconds where the count changes: it holds in between (drawn as steps).
    for sec in sorted(set(acked) | set(rows)):
        total += acked.get(sec, 0) - rows.get(sec, 0)
        out.append((sec, max(total, 0)))
    return out


def plot_unseen(
    out_dir: Path,
    series: Sequence[SecondStats],
    acks: Sequence[tuple[int, int]],
    lag: dict[int, list[tuple[int, int]]],
    faults: Sequence[Fault],
    t0_ms: int,
    end_ms: int,
) -> str | None:
    unseen = unseen_series(series, acks)
    if not unseen:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    x = [float(sec) for sec, _ in unseen]
    y = [float(n) for _, n in unseen]
    top.step(_rel(x, t0_ms), y, lw=1, where="post", label="unseen (acked, not in sink)")
    _shade_faults(top, faults, t0_ms, end_ms)
    top.set_ylabel("ids")
    top.set_title("Acknowledged but not yet in the sink, and Spark's lag per partition")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    for part, points in sorted(lag.items()):
        bottom.step([(ms - t0_ms) / 1000 for ms, _ in points], [n for _, n in points], lw=1,
                    where="post", label=f"partition {part}")  # fmt: skip
    _shade_faults(bottom, faults, t0_ms, end_ms)
    bottom.set_xlabel("seconds since run start")
    bottom.set_ylabel("offsets behind")
    if lag:
        bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    else:
        bottom.text(
            0.5, 0.5, "lag not measured (no spark_progress rows)", ha="center", transform=bottom.transAxes
        )
    return _save(fig, out_dir / UNSEEN_PNG)


SERIES_PER_PANEL = 8  # more series than this (e.g. many partitions) are drawn as their sum


def plot_fault_signals(
    out_dir: Path,
    fault: Fault,
    signals: Sequence[Signal],
    faults: Sequence[Fault],
    before_s: int,
    after_s: int,
    end_ms: int,
) -> str | None:
    """The component signals from before_s before the fault to after_s after its end, every fault window
    in that span shaded and labelled with its target; x is seconds since this fault's start."""
    w = fault.window
    a, b = w.start_ms - before_s * 1000, (w.end_ms if w.end_ms is not None else end_ms) + after_s * 1000
    panels = [s for s in signals if any(x.between(a, b) for x in s.series)]
    if not panels:
        return None
    height = 1.3 + 1.5 * len(panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, height), sharex=True, squeeze=False)
    for i, (ax, sig) in enumerate(zip(axes[:, 0], panels, strict=True)):
        rows = [(sig.series_name(x), x.between(a, b)) for x in sig.series]
        if len(rows) > SERIES_PER_PANEL:
            rows = [(f"sum of {len(rows)} series", [(t, v) for t, v in sig.total() if a <= t <= b])]
        for name, points in rows:
            if points:
                ax.step([(t - w.start_ms) / 1000 for t, _ in points], [v for _, v in points], lw=1,
                        where="post", label=name)  # fmt: skip
        near = [f for f in faults if _overlaps(f, a, b, end_ms)]
        _shade_faults(ax, near, w.start_ms, end_ms, sorted({f.window.kind for f in faults}))
        ax.set_xlim((a - w.start_ms) / 1000, (b - w.start_ms) / 1000)
        ax.set_ylabel(sig.unit or "value", fontsize="small")
        ax.set_title(f"{sig.component}: {sig.label}", fontsize="small", loc="left")
        # The fault kinds once, in the top panel's legend; below it only the series.
        shown = [(h, lb) for h, lb in zip(*ax.get_legend_handles_labels(), strict=True)
                 if i == 0 or not lb.startswith("fault: ")]  # fmt: skip
        if shown:
            ax.legend(
                *zip(*shown, strict=True), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="x-small"
            )
    axes[-1, 0].set_xlabel(
        f"seconds since {w.fault_id.rsplit('/', 1)[-1]} began ({w.kind} of {w.target or '-'})"
    )
    # Fixed margins instead of tight_layout: a third of the time per figure, and one per fault adds up.
    fig.subplots_adjust(left=0.07, right=0.78, top=1 - 0.3 / height, bottom=0.6 / height, hspace=0.5)
    return _save(fig, out_dir / SIGNALS_PNG.format(fault=_file_part(w.fault_id)), tight=False)


def _overlaps(f: Fault, a_ms: int, b_ms: int, end_ms: int) -> bool:
    end = f.window.end_ms if f.window.end_ms is not None else end_ms
    return f.window.start_ms <= b_ms and end >= a_ms


def _file_part(fault_id: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in fault_id.rsplit("/", 1)[-1])
