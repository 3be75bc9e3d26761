"""The seed's per-component sections (what happened, how it recovered), the checkpoint and idempotent-sink
sections: pre-formatted strings from ReportData, like the rest of the report's context."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tools.recovery import FaultRecovery
from tools.report.data import ReportData
from tools.report.findings import (
    COMPONENT_TITLES,
    component_of,
    fault_horizon,
    own_ack_stall_s,
    what_components_did,
)
from tools.report.fmt import NOT_MEASURED, fmt_int, fmt_rate, fmt_s
from tools.run.timeline import Fault


def _recovery_words(r: FaultRecovery | None) -> str:
    if r is None:
        return f"recovery {NOT_MEASURED}"
    if not r.recovered:
        return "did not recover within the run"
    if r.recovery_s == 0:
        return "no degradation"
    if r.after_heal_s is not None and r.after_heal_s <= 0:
        return f"recovered in {fmt_s(r.recovery_s)}, before the fault ended"
    heal = f" ({fmt_s(r.after_heal_s)} after the fault ended)" if r.after_heal_s is not None else ""
    return f"recovered in {fmt_s(r.recovery_s)}{heal}"


def _commits_resumed_s(data: ReportData, end_ms: int | None) -> float | None:
    """Seconds from the fault's end to the first whole second of sink commits at or after it."""
    if end_ms is None:
        return None
    first = next((s.sec for s in data.series if s.sec * 1000 >= end_ms and s.rows > 0), None)
    return None if first is None else (first * 1000 - end_ms) / 1000


def _fault_entry(
    data: ReportData, f: Fault, r: FaultRecovery | None, plot: str | None, acks: list[int]
) -> dict[str, Any]:
    w = f.window
    effect = data.effects.get(w.fault_id)
    facts = [f"at {(w.start_ms - data.start_ms) / 1000:+.1f} s"]
    if w.end_ms is not None:
        facts.append(f"for {fmt_s((w.end_ms - w.start_ms) / 1000)}")
    what = []
    stall = own_ack_stall_s(acks, w.start_ms, w.end_ms)
    if stall is not None:
        what.append(f"longest time without a producer acknowledgement that began during it {fmt_s(stall)}")
    if effect is not None and effect.rows_per_s is not None:
        what.append(f"sink commits during the fault {fmt_rate(effect.rows_per_s)}")
        resumed = _commits_resumed_s(data, w.end_ms)
        if effect.rows_per_s == 0 and resumed is not None:
            what.append(f"commits resumed {fmt_s(resumed)} after it ended")
    if effect is not None and data.ledger is not None and (effect.failed_ids or effect.indeterminate_ids):
        what.append(
            f"{fmt_int(effect.failed_ids)} failed and {fmt_int(effect.indeterminate_ids)} indeterminate sends"
        )
    if f.not_applicable:
        what.append(f"{f.shown_outcome}: nothing was done")
    elif not f.applied:
        what.append(f"outcome `{f.outcome}`: may not have been applied")
    did = []
    # A fault that may not have been applied gets no component lines: what moved then was not its doing.
    if data.metrics is not None and w.end_ms is not None and f.applied:
        until = fault_horizon(data, f)
        did = [
            f"{COMPONENT_TITLES[c.component]}: {c.text}"
            for c in what_components_did(data.metrics, w.start_ms, w.end_ms, until)
        ]
    return {
        "id": w.fault_id.rsplit("/", 1)[-1],
        "kind": w.kind,
        "target": w.target or "-",
        "when": " ".join(facts),
        "what": "; ".join(what) or NOT_MEASURED,
        "recovery": "nothing to recover from" if f.not_applicable else _recovery_words(r),
        "did": did,
        "plot": plot,
    }


def components(data: ReportData, signal_plots: dict[str, str | None]) -> list[dict[str, Any]]:
    """Kafka, Spark, PostgreSQL, producer (and other targets, if any): their faults, what the data shows
    happened and how the pipeline recovered, with the component signals around each fault."""
    recoveries = {r.fault.fault_id: r for r in data.recoveries}
    acks = sorted(a.ts_ms for a in data.ledger.acks) if data.ledger is not None else []
    out = []
    for key, title in COMPONENT_TITLES.items():
        faults = [f for f in data.faults if component_of(f.window.target) == key]
        signals = [s.label for s in data.metrics.of(key)] if data.metrics is not None else []
        if key == "other" and not faults:
            continue
        counted = [
            recoveries[f.window.fault_id] for f in faults if f.applied and f.window.fault_id in recoveries
        ]
        done = [r.recovery_s for r in counted if r.recovered]
        kinds = Counter(f.window.kind for f in faults)
        summary = ""
        if faults:
            summary = (
                f"{len(faults)} fault(s): " + ", ".join(f"`{k}` x{n}" for k, n in sorted(kinds.items())) + "."
            )
            if counted:
                summary += f" {len(done)} of {len(counted)} applied recovered"
                summary += f" (recovery {fmt_s(min(done))} .. {fmt_s(max(done))})." if done else "."
        out.append(
            {
                "title": title,
                "summary": summary,
                "signals": ", ".join(signals),
                "faults": [
                    _fault_entry(
                        data, f, recoveries.get(f.window.fault_id), signal_plots.get(f.window.fault_id), acks
                    )
                    for f in faults
                ],
            }
        )
    return out


def _count(classes: dict[str, Any], name: str) -> str:
    c = classes.get(name)
    return fmt_int(c["count"]) if isinstance(c, dict) else NOT_MEASURED


def checkpoint(data: ReportData) -> dict[str, str] | None:
    """Spark's checkpoint, from the layered checker: did committed batches read every offset once?"""
    v = data.validation
    classes = ((v or {}).get("layers") or {}).get("classes") or {}
    if not classes:
        return None
    spark_faults = [f for f in data.faults if component_of(f.window.target) == "spark"]
    return {
        "batches": fmt_int(v.get("attributed_batches"))
        if v and isinstance(v.get("attributed_batches"), int)
        else NOT_MEASURED,
        "gap": _count(classes, "offset-gap"),
        "skipped": _count(classes, "skipped"),
        "overlap": _count(classes, "offset-overlap"),
        "unread": _count(classes, "unread"),
        "ahead": _count(classes, "sink-ahead-of-checkpoint"),
        "divergence": _count(classes, "replay-divergence"),
        "spark_faults": fmt_int(len(spark_faults)),
    }


def idempotent_sink(data: ReportData) -> dict[str, str] | None:
    """The sink's key and batch marker: replays and retries it absorbed, and whether any id landed twice."""
    v = data.validation
    if v is None:
        return None

    def num(key: str) -> str:
        return fmt_int(v.get(key)) if isinstance(v.get(key), int) else NOT_MEASURED

    pg_faults = [f for f in data.faults if component_of(f.window.target) == "postgres"]
    return {
        "duplicates": num("duplicate_count"),
        "replays": num("replays_absorbed"),
        "absorbed_rows": num("upsert_absorbed_rows"),
        "rows": num("rows_count"),
        "present": num("present_ids_count"),
        "pg_faults": fmt_int(len(pg_faults)),
    }
