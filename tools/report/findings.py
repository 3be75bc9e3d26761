"""What each component did around a fault, and the report's findings, derived from the run's data only.

A signal "reacted" to a fault when, from the fault's start to its horizon (AFTER_S after its end, or the
next fault's start if that comes sooner), its value (summed over its series) left the band around its
level in the PRE_S before the start: the band is the larger of three median absolute deviations and a
quarter of that level, so a noisy rate does not count as a reaction.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import pairwise
from statistics import median
from typing import TYPE_CHECKING

from tools.recovery import service_of
from tools.report.signals import KEY_SIGNALS, Metrics, Signal

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tools.report.data import ReportData
    from tools.run.timeline import Fault

PRE_S = 10  # the signal's level before a fault: its median over this many seconds before the start
AFTER_S = 60  # a reaction is looked for until this many seconds after the fault's end (or the next fault)

# The components of the report, in the seed's order, and the services (target without number) of each.
COMPONENT_TITLES = {
    "kafka": "Kafka brokers and controllers",
    "spark": "Spark",
    "postgres": "PostgreSQL",
    "producer": "Producer",
    "other": "Other targets",
}


def component_of(target: str) -> str:
    service = service_of(target or "")
    for name in ("kafka", "spark", "postgres", "producer"):
        if service.startswith(name):
            return name
    return "other"


def horizon_ms(faults: Sequence[Fault], fault: Fault, end_ms: int, stop_ms: int | None = None) -> int:
    """Until when a reaction counts as this fault's: AFTER_S after its end, the start of the next fault
    that begins after it ends (an overlapping one's effect cannot be told apart), or when the producer
    stopped for good (`stop_ms`: the pipeline then drains and idles), whichever is soonest."""
    later = [f.window.start_ms for f in faults if f.window.start_ms > end_ms and f is not fault]
    if stop_ms is not None and stop_ms > end_ms:
        later.append(stop_ms)
    return min([end_ms + AFTER_S * 1000, *later])


def fault_horizon(data: ReportData, fault: Fault) -> int:
    """horizon_ms for one of the run's faults: the applied faults, and the producer's last record."""
    end = fault.window.end_ms if fault.window.end_ms is not None else data.end_ms
    stop = max((s.last_ms for s in data.ledger.sessions), default=None) if data.ledger is not None else None
    return horizon_ms([f for f in data.faults if f.applied], fault, end, stop)


@dataclass(frozen=True)
class Reaction:
    signal: Signal
    level: float  # before the fault
    extreme: float  # the value furthest from that level
    departed_ms: int  # first point outside the band
    extreme_ms: int
    back_ms: int | None  # first point back inside the band after the extreme; None: not by the horizon
    horizon_ms: int
    events: float | None = None  # EVENT_NOUNS signals: the rate integrated from departure to back

    def describe(self, start_ms: int, end_ms: int) -> str:
        """E.g. "under-replicated partitions 0 → 60 from +3.5 s, back at +31.5 s (15.4 s after the fault
        ended)";
        +N s: seconds after the fault began."""
        unit = self.signal.unit
        if self.events is not None and self.level == 0:
            text = (
                f"{self.events:,.0f} {EVENT_NOUNS[self.signal.name]} from {_plus(self.departed_ms, start_ms)}"
            )
        else:
            text = (
                f"{self.signal.label} {fmt_value(self.level, unit)} → {fmt_value(self.extreme, unit)} "
                f"from {_plus(self.departed_ms, start_ms)}"
            )
            if self.extreme_ms != self.departed_ms:
                text += f" (furthest at {_plus(self.extreme_ms, start_ms)})"
        if self.back_ms is None:
            return text + f", not back by {_plus(self.horizon_ms, start_ms)}"
        text += f", back at {_plus(self.back_ms, start_ms)}"
        if self.back_ms > end_ms:
            text += f" ({(self.back_ms - end_ms) / 1000:.1f} s after the fault ended)"
        return text


def _plus(ms: int, start_ms: int) -> str:
    return f"+{(ms - start_ms) / 1000:.1f} s"


def _after(ms: int, start_ms: int) -> str:
    return f"{(ms - start_ms) / 1000:.1f} s after"


UNIT_SUFFIX = {"count": "", "ratio": "", "per_second": "/s", "seconds": " s", "bytes": " B"}


def fmt_value(value: float, unit: str) -> str:
    text = f"{value:,.0f}" if abs(value) >= 100 or value == round(value) else f"{value:.3g}"
    return text + UNIT_SUFFIX.get(unit, f" {unit}" if unit else "")


def react(signal: Signal, start_ms: int, end_ms: int, until_ms: int | None = None) -> Reaction | None:
    """The signal's departure from its pre-fault level by `until_ms` (default AFTER_S after the end), or
    None (no data on both sides of the start, or no change)."""
    until = end_ms + AFTER_S * 1000 if until_ms is None else until_ms
    total = signal.total()
    before = [v for t, v in total if start_ms - PRE_S * 1000 <= t <= start_ms]
    during = [(t, v) for t, v in total if start_ms < t <= until]
    if not before or not during:
        return None
    level = median(before)
    band = max(3 * median(abs(v - level) for v in before), 0.25 * abs(level), 1e-9)
    outside = [(t, v) for t, v in during if abs(v - level) > band]
    if not outside:
        return None
    departed = outside[0][0]
    extreme_ms, extreme = max(outside, key=lambda p: abs(p[1] - level))
    back = next((t for t, v in during if t > extreme_ms and abs(v - level) <= band), None)
    events = None
    if signal.name in EVENT_NOUNS:
        span = [(t, v) for t, v in during if departed <= t and (back is None or t < back)]
        after = [t for t, _ in during if t > departed]
        steps = [b - a for (a, _), b in zip(span, after, strict=False)]  # each point's time to the next
        events = sum(v * dt / 1000 for (_, v), dt in zip(span, steps, strict=False))
    return Reaction(signal, level, extreme, departed, extreme_ms, back, until, events)


# Rates of events: integrated over the reaction they give a count ("leadership of 2 partitions moved").
EVENT_NOUNS = {
    "kafka_leader_elections_per_second": "partition leaderships moved",
    "kafka_isr_shrinks_per_second": "ISR shrinks",
    "kafka_isr_expands_per_second": "ISR expands",
}

PANELS = 10  # at most this many signals in one fault's figure


def panel_signals(
    metrics: Metrics, target: str, start_ms: int, end_ms: int, until_ms: int | None = None
) -> list[Signal]:
    """A fault's figure: the key signals, then the other signals of the target's component that reacted."""
    key = [metrics.signals[n] for n in KEY_SIGNALS if n in metrics.signals]
    own = [s for s in metrics.of(component_of(target)) if s.name not in KEY_SIGNALS]
    return (key + [s for s in own if react(s, start_ms, end_ms, until_ms)])[:PANELS]


def _key_first(r: Reaction) -> tuple[int, int]:
    rank = KEY_SIGNALS.index(r.signal.name) if r.signal.name in KEY_SIGNALS else len(KEY_SIGNALS)
    return rank, r.departed_ms


@dataclass(frozen=True)
class ComponentLine:
    component: str
    text: str


def what_components_did(
    metrics: Metrics, start_ms: int, end_ms: int, until_ms: int | None = None
) -> list[ComponentLine]:
    """One line per component with its reacting signals (the key signals first); the unchanged ones, and
    those without data on both sides of the fault's start (an exporter down, not scraped yet), at the end."""
    until = end_ms + AFTER_S * 1000 if until_ms is None else until_ms
    lines = []
    for component in ("kafka", "spark", "postgres", "producer"):
        reactions: list[Reaction] = []
        still, missing = [], []
        for sig in metrics.of(component):
            r = react(sig, start_ms, end_ms, until)
            if r is not None:
                reactions.append(r)
            elif _judged(sig, start_ms, until):
                still.append(sig.label)
            else:
                missing.append(sig.label)
        moved = [r.describe(start_ms, end_ms) for r in sorted(reactions, key=_key_first)]
        if not moved and not still:
            if missing:
                lines.append(ComponentLine(component, f"no data around this fault ({', '.join(missing)})."))
            continue
        text = "; ".join(moved) if moved else "no signal left its level"
        if still:
            text += f" (unchanged: {', '.join(still)})"
        if missing:
            text += f" (no data: {', '.join(missing)})"
        lines.append(ComponentLine(component, text + "."))
    return lines


def _judged(signal: Signal, start_ms: int, until_ms: int) -> bool:
    """Whether react() had points before the start and after it to compare."""
    times = [t for t, _ in signal.total()]
    before = any(start_ms - PRE_S * 1000 <= t <= start_ms for t in times)
    return before and any(start_ms < t <= until_ms for t in times)


# How a finding names a fault of a kind (any other kind: "`kind` of target").
KIND_PHRASES = {
    "kill": "killing {target}",
    "stop": "stopping {target}",
    "pause": "pausing {target}",
    "restart": "restarting {target}",
    "iptables partition": "partitioning {target} from its peers",
    "iptables loss": "packet loss on {target}",
}


def _fault_name(f: Fault) -> str:
    w = f.window
    phrase = KIND_PHRASES.get(w.kind, f"`{w.kind}` of {{target}}").format(target=w.target or "no target")
    signal = (
        f.params.get("signal") if w.kind == "kill" else None
    )  # the kill kind's signal, as the run records it
    return (
        f"{phrase[0].upper()}{phrase[1:]}{f' ({signal})' if signal else ''} ({w.fault_id.rsplit('/', 1)[-1]})"
    )


def usual_ack_gap_s(data: ReportData) -> float | None:
    """The longest time between two producer acknowledgements in the PRE_S before the first fault: what
    a gap has to exceed to be called a stall."""
    if data.ledger is None or not data.faults:
        return None
    first = min(f.window.start_ms for f in data.faults)
    times = sorted(a.ts_ms for a in data.ledger.acks if first - PRE_S * 1000 <= a.ts_ms <= first)
    if len(times) < 2:
        return None
    return max(b - a for a, b in pairwise(times)) / 1000


def _kafka_facts(metrics: Metrics, start_ms: int, end_ms: int, until_ms: int) -> list[str]:
    """What a Kafka user asks first: did leadership move, and when were all replicas in sync again."""
    facts = []
    moved = metrics.signals.get("kafka_leader_elections_per_second")
    r = react(moved, start_ms, end_ms, until_ms) if moved is not None else None
    if r is not None and r.events is not None and r.level == 0 and round(r.events) > 0:
        facts.append(
            f"leadership of {r.events:,.0f} partitions moved from {_after(r.departed_ms, start_ms)} the start"
        )
    short = metrics.signals.get("kafka_under_replicated_partitions")
    r = react(short, start_ms, end_ms, until_ms) if short is not None else None
    if r is not None and r.level == 0:
        fact = f"up to {fmt_value(r.extreme, r.signal.unit)} partitions under-replicated"
        if r.back_ms is None:
            facts.append(f"{fact}, not all back in sync by {_plus(r.horizon_ms, start_ms)}")
        else:
            facts.append(f"{fact}, all in sync again {_after(r.back_ms, start_ms)} the start")
    return facts


def _overlap(a: Fault, b: Fault) -> bool:
    if a.window.end_ms is None or b.window.end_ms is None:
        return False
    return a.window.start_ms < b.window.end_ms and b.window.start_ms < a.window.end_ms


def own_ack_stall_s(acks: list[int], start_ms: int, end_ms: int | None) -> float | None:
    """The longest time without a producer acknowledgement that began while the fault was active: from
    its start (or an ack during it) to the next ack, which may come after its end. A stall that began
    after the fault ended belongs to whatever came next, not to it."""
    if not acks or end_ms is None:
        return None
    inside = acks[bisect_left(acks, start_ms) : bisect_right(acks, end_ms)]
    after = acks[bisect_right(acks, end_ms) : bisect_right(acks, end_ms) + 1]
    points = [start_ms, *inside, *after]
    if len(points) < 2:
        return None
    return max(b - a for a, b in pairwise(points)) / 1000


def report_findings(data: ReportData) -> list[str]:
    """Statements the run's numbers support, strongest first: acknowledgement stalls, recoveries, the
    first component reaction per fault, then what the checker found."""
    lines = []
    recoveries = {r.fault.fault_id: r for r in data.recoveries}
    applied = [f for f in data.faults if f.applied]
    usual = usual_ack_gap_s(data)
    if usual is not None:
        lines.append(f"Before the first fault, producer acknowledgements were at most {usual:.1f} s apart.")
    acks = sorted(a.ts_ms for a in data.ledger.acks) if data.ledger is not None else []
    stalls = sorted(((own_ack_stall_s(acks, f.window.start_ms, f.window.end_ms), f) for f in applied),
                    key=lambda p: -(p[0] or 0))  # fmt: skip
    for gap, f in stalls:
        w = f.window
        parts = []
        if gap is not None and usual is not None:  # (no ack after the fault at all: not judged)
            stalled = gap > 2 * usual  # twice the usual gap: a stall, not the producer's rhythm
            parts.append(f"stalled producer acknowledgements {gap:.1f} s" if stalled else
                         f"acknowledgements kept coming (longest gap {gap:.1f} s)")  # fmt: skip
        r = recoveries.get(w.fault_id)
        if r is not None:
            if not r.recovered:
                parts.append("the pipeline did not recover within the run")
            elif r.recovery_s == 0:
                parts.append("end-to-end latency never left the healthy band")
            else:
                parts.append(f"the pipeline was healthy again {r.recovery_s:.1f} s after the start")
        if data.metrics is not None and w.end_ms is not None:
            # The target's own component first: a noisy rate elsewhere is a weaker witness.
            until = fault_horizon(data, f)
            for signals in (data.metrics.of(component_of(w.target)), data.metrics.signals.values()):
                first = [x for x in (react(s, w.start_ms, w.end_ms, until) for s in signals
                                     if s.component != "chaos") if x]  # fmt: skip
                if first:
                    x = min(first, key=lambda x: x.departed_ms)
                    parts.append(
                        f"first to react: {x.signal.label}, {_after(x.departed_ms, w.start_ms)} the start"
                    )
                    break
            parts += _kafka_facts(data.metrics, w.start_ms, w.end_ms, until)
        others = [o.window.fault_id.rsplit("/", 1)[-1] for o in applied if o is not f and _overlap(o, f)]
        if parts and others:
            parts.append(f"while {', '.join(others)} was also active (its effect included)")
        if parts:
            lines.append(f"{_fault_name(f)}: {'; '.join(parts)}.")
    slow = [k for k in data.kinds if k.recovered]
    if slow:
        k = max(slow, key=lambda k: k.max_s or 0)
        lines.append(f"Slowest recovery: `{k.kind}` of {k.service}, up to {k.max_s:.1f} s "
                     f"(median {k.median_s:.1f} s over {k.recovered} fault(s)).")  # fmt: skip
    v = data.validation or {}
    classes = (v.get("layers") or {}).get("classes") or {}
    errors = [
        f"{n} {c['count']:,} ({c['layer']})" for n, c in classes.items() if c["count"] and not c["allowed"]
    ]
    if errors:
        lines.append(f"The checker found: {', '.join(errors)}.")
    elif v:
        lines.append("The checker found no anomaly at any layer." if classes else
                     "The set checker found no missing, extra or duplicate id.")  # fmt: skip
    return lines
