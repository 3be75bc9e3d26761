"""Render RESILIENCE_REPORT.md from ReportData with the Jinja2 templates shipped in this package.

The context holds pre-formatted strings: the template decides layout only, never numbers. Any
figure that the run did not produce renders as NOT_MEASURED.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2

from tools.chaos.kinds import mechanism
from tools.pgconn import redact_dsn
from tools.recovery import FaultRecovery
from tools.report import findings, plots, sections
from tools.report.data import ReportData
from tools.report.findings import AFTER_S, PRE_S, fault_horizon, panel_signals
from tools.report.fmt import NOT_MEASURED, fmt_int, fmt_ms, fmt_rate, fmt_s
from tools.run.clock import iso_from_ms
from tools.run.layout import METRICS_DIR, REPORT_FILE, SINK_DATA_FILE

TEMPLATE = "report.md.j2"
SAFE_PROFILE = "safe"


OBSERVED_CHARS = 300  # of what a target did, per table cell


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    else:
        text = json.dumps(value) if not isinstance(value, str) else value
        out.append((prefix, text.replace("|", "\\|")))


def flatten(value: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    _flatten("", value, out)
    return out


def _rel_s(ms: int | None, t0_ms: int) -> str:
    return NOT_MEASURED if ms is None else f"{(ms - t0_ms) / 1000:+.1f} s"


def _traffic(data: ReportData) -> dict[str, Any]:
    producer = data.run.get("settings", {}).get("producer", {})
    rate = producer.get("rate") if isinstance(producer, dict) else None
    if rate is None:
        requested = NOT_MEASURED
    elif rate == 0:
        requested = "as fast as possible (--rate 0)"
    else:
        requested = f"{rate:,.1f} events/s"
    ledger = data.ledger
    if ledger is None:
        return {"requested": requested, "ledger": None}
    counts = ledger.counts()
    active_s = sum(max(0, s.last_ms - s.start_ms) for s in ledger.sessions) / 1000
    peak = max((n for _, n in data.ack_series), default=None)
    return {
        "requested": requested,
        "ledger": True,
        "sessions": fmt_int(len(ledger.sessions)),
        "restarts": fmt_int(max(0, len(ledger.sessions) - 1)),
        "unclean": fmt_int(sum(1 for s in ledger.sessions if not s.clean)),
        "attempted": fmt_int(counts["attempted"]),
        "acked": fmt_int(counts["acked"]),
        "failed": fmt_int(counts["failed"]),
        "indeterminate": fmt_int(counts["indeterminate"]),
        "active": fmt_s(active_s),
        "ack_rate": fmt_rate(counts["acked"] / active_s) if active_s > 0 else NOT_MEASURED,
        "peak_acks": fmt_int(peak),
    }


def _faults(data: ReportData) -> list[dict[str, str]]:
    rows = []
    for f in data.faults:
        w = f.window
        duration = None if w.end_ms is None else (w.end_ms - w.start_ms) / 1000
        effect = data.effects.get(w.fault_id)
        rows.append(
            {
                "id": w.fault_id,
                "kind": w.kind,
                "target": w.target or "-",
                "executor": _executor(f.executor, w.kind, f.params),
                "start": _rel_s(w.start_ms, data.start_ms),
                "start_iso": iso_from_ms(w.start_ms),
                "duration": fmt_s(duration) if duration is not None else "no end recorded",
                "outcome": _with_observed(f.shown_outcome or "-", f.observed),
                "params": json.dumps(f.params, sort_keys=True).replace("|", "\\|") if f.params else "-",
                "rows_per_s": fmt_rate(effect.rows_per_s) if effect else NOT_MEASURED,
                "ack_gap": fmt_s(effect.longest_ack_gap_s) if effect else NOT_MEASURED,
                "failed": fmt_int(effect.failed_ids) if effect and data.ledger else NOT_MEASURED,
                "indeterminate": fmt_int(effect.indeterminate_ids)
                if effect and data.ledger
                else NOT_MEASURED,
                "sessions": fmt_int(effect.sessions_started) if effect and data.ledger else NOT_MEASURED,
            }
        )
    return rows


def _executor(executor: str | None, kind: str, params: dict[str, Any] | None) -> str:
    """The executor and, where known, the mechanism that applied the fault (netem or its proxy equivalent)."""
    how = mechanism(kind, params or {})
    return f"{executor or '-'} ({how})" if how else executor or "-"


def _with_observed(text: str, observed: list[str]) -> str:
    """A table cell plus what the target did during the fault (e.g. a disk fill: exited, its log lines)."""
    if not observed:
        return text
    seen = "; ".join(observed)
    seen = seen if len(seen) <= OBSERVED_CHARS else seen[: OBSERVED_CHARS - 3] + "..."
    return f"{text + '; ' if text else ''}target: {seen}".replace("|", "\\|")


def _short(fault_id: str) -> str:
    return fault_id.rsplit("/", 1)[-1]


def _recovery_note(data: ReportData, fault_id: str, outcome: str, applied: bool) -> str:
    if not applied:
        return f"outcome `{outcome}`: may not have been applied; not in the per-kind statistics"
    earlier = data.overlapping.get(fault_id, [])
    if earlier:
        whose = "its" if len(earlier) == 1 else "their"
        declared = data.concurrent.get(_short(fault_id), set())
        meant = [e for e in earlier if _short(e) in declared]
        unmeant = [e for e in earlier if _short(e) not in declared]
        parts = []
        if meant:
            parts.append(f"declared concurrent with {', '.join(meant)}")
        if unmeant:
            parts.append(f"began before {', '.join(unmeant)} ended or recovered (not declared concurrent)")
        return f"{'; '.join(parts)}: includes {whose} effect"
    return ""


def _after_heal(r: FaultRecovery) -> str:
    """Never a negative duration: a fault that degraded nothing, or recovered while active, says so."""
    if not r.recovered:
        return "-"
    if r.recovery_s == 0:
        return "no degradation"
    if r.after_heal_s is None:
        return "no end recorded"
    if r.after_heal_s <= 0:
        return "recovered before the fault ended"
    return fmt_s(r.after_heal_s)


def _reran(data: ReportData, r: FaultRecovery) -> str:
    if data.spark_batches is None:
        return NOT_MEASURED
    found = data.spark_batches.until_recovery(r.fault.start_ms, r.recovered_at_ms, data.end_ms)
    return NOT_MEASURED if found is None else found


def _done(data: ReportData) -> list[FaultRecovery]:
    """Recoveries of the faults that were tried: a not-applicable one did nothing."""
    skip = {f.window.fault_id for f in data.faults if f.not_applicable}
    return [r for r in data.recoveries if r.fault.fault_id not in skip]


def _recoveries(data: ReportData) -> list[dict[str, str]]:
    rows = []
    faults = {f.window.fault_id: f for f in data.faults}
    for r in _done(data):
        fault = faults[r.fault.fault_id]
        rows.append(
            {
                "id": r.fault.fault_id,
                "kind": r.fault.kind,
                "target": r.fault.target or "-",
                "recovery": fmt_s(r.recovery_s) if r.recovered else "did not recover within the run",
                "after_heal": _after_heal(r),
                "recovered_at": iso_from_ms(r.recovered_at_ms) if r.recovered_at_ms is not None else "-",
                "peak_p99": fmt_ms(r.peak_p99_ms),
                "reran": _reran(data, r),
                "note": _with_observed(
                    _recovery_note(data, r.fault.fault_id, fault.outcome, fault.applied), fault.observed
                ),
            }
        )
    return rows


def _conclusion(data: ReportData) -> list[str]:
    """Statements that follow from this run's numbers, and nothing else."""
    lines = []
    v = data.validation
    if v is None:
        lines.append(f"Data integrity: {NOT_MEASURED} (no validation.json: run `tools validate` first).")
    elif v.get("valid"):
        lines.append(
            f"Data integrity: VALID. Of {fmt_int(v.get('acked_count'))} acknowledged events none is missing, "
            f"no id was delivered twice, none is unexpected, and no definitely failed send is present "
            f"({fmt_int(v.get('indeterminate_present'))} of {fmt_int(v.get('indeterminate_count'))} "
            f"indeterminate sends arrived)."
        )
    else:
        problems = "; ".join(v.get("problems", [])) or "see section 5"
        lines.append(f"Data integrity: INVALID: {problems}.")
    if not data.faults:
        lines.append(f"Fault tolerance: {NOT_MEASURED} (no faults in timeline.jsonl).")
    elif not data.recoveries:
        lines.append(f"Recovery time: {NOT_MEASURED} (no baseline or no sink data).")
    else:
        applied = {f.window.fault_id for f in data.faults if f.applied}
        counted = [r for r in data.recoveries if r.fault.fault_id in applied]
        done = sum(1 for r in counted if r.recovered)
        line = f"Recovery: {done} of {len(counted)} applied faults recovered within the run."
        skipped = len(data.recoveries) - len(counted) - sum(1 for f in data.faults if f.not_applicable)
        if skipped:
            line += f" {skipped} fault(s) with another outcome (possibly not applied) are not counted."
        overlapped = sum(1 for r in counted if data.overlapping.get(r.fault.fault_id))
        if overlapped:
            line += f" {overlapped} began before an earlier fault had recovered (see section 3)."
        lines.append(line)
        for k in data.kinds:
            if k.recovered:
                lines.append(
                    f"`{k.kind}` of {k.service}: {k.recovered} of {k.faults} recovered; recovery time min "
                    f"{fmt_s(k.min_s)}, median {fmt_s(k.median_s)}, max {fmt_s(k.max_s)}."
                )
            else:
                lines.append(f"`{k.kind}` of {k.service}: none of {k.faults} recovered within the run.")
    if data.run.get("profile", SAFE_PROFILE) != SAFE_PROFILE:
        lines.append(
            f"This run used the known-unsafe profile `{data.run['profile']}`: its results say whether the "
            f"checker detects what that profile breaks, not that the pipeline is safe."
        )
    return lines


def _sink_from(data: ReportData) -> str:
    """Where the sink's figures came from, for the report's first paragraph."""
    tables = f"the `{data.sink_table}` and `spark_progress` tables"
    if data.sink_saved_at is None:
        return f"a fresh query of {tables}" if data.sink_queried else f"no query of {tables} (`--offline`)"
    saved = f"{tables}' figures for this run, saved with it (`{SINK_DATA_FILE}`, {data.sink_saved_at})"
    return f"{saved}, and a query of them for what that copy lacks" if data.sink_queried else saved


def build_context(
    data: ReportData, plot_files: dict[str, str | None], signal_plots: dict[str, str | None] | None = None
) -> dict[str, Any]:
    run = data.run
    lat = data.latency
    committed_span = (lat.last_commit_ms - lat.first_commit_ms) / 1000 if lat else 0
    peak_rows = max((s.rows for s in data.series), default=None)
    v = data.validation
    return {
        "run_id": run["run_id"],
        "profile": run.get("profile", SAFE_PROFILE),
        "unsafe": run.get("profile", SAFE_PROFILE) != SAFE_PROFILE,
        "generated_at": data.generated_at,
        "NM": NOT_MEASURED,
        "started_at": iso_from_ms(data.start_ms),
        "ended_at": iso_from_ms(data.end_ms),
        "duration": fmt_s((data.end_ms - data.start_ms) / 1000),
        "sink_table": data.sink_table,
        "sink_from": _sink_from(data),
        "no_baseline": data.no_baseline,
        "topic": run.get("topic") or NOT_MEASURED,
        "bootstrap": run.get("bootstrap_servers") or NOT_MEASURED,
        "dsn": redact_dsn(run.get("postgres_dsn")),
        "versions": flatten(run.get("versions") or {}),
        "topology": flatten(run.get("topology") or {}),
        "settings": flatten(run.get("settings") or {}),
        "traffic": _traffic(data),
        "faults": _faults(data),
        "fault_kinds": sorted({f.window.kind for f in data.faults}),
        "recovery_definition": data.params.describe(),
        "baseline": None
        if data.baseline is None
        else {
            "p99": fmt_ms(data.baseline.p99_ms),
            "threshold": fmt_ms(data.baseline.threshold_ms),
            "cadence": fmt_s(data.baseline.cadence_s),
            "rows": fmt_int(data.baseline.rows),
            "window": f"{iso_from_ms(data.baseline.window_start_ms)} .. "
            f"{iso_from_ms(data.baseline.window_end_ms)}",
        },
        "recoveries": _recoveries(data),
        "concurrent": data.concurrent_groups,
        "kinds": [
            {
                "kind": k.kind,
                "service": k.service,
                "faults": fmt_int(k.faults),
                "recovered": fmt_int(k.recovered),
                "min": fmt_s(k.min_s) if k.recovered else "-",
                "median": fmt_s(k.median_s) if k.recovered else "-",
                "max": fmt_s(k.max_s) if k.recovered else "-",
            }
            for k in data.kinds
        ],
        "latency": None
        if lat is None
        else {
            "rows": fmt_int(lat.rows),
            "p50": fmt_ms(lat.p50_ms),
            "p95": fmt_ms(lat.p95_ms),
            "p99": fmt_ms(lat.p99_ms),
            "max": fmt_ms(lat.max_ms),
            "first": iso_from_ms(lat.first_commit_ms),
            "last": iso_from_ms(lat.last_commit_ms),
            "mean_rate": fmt_rate(lat.rows / committed_span) if committed_span > 0 else NOT_MEASURED,
            "peak_rate": f"{peak_rows:,} rows" if peak_rows is not None else NOT_MEASURED,
        },
        "spark": None
        if data.spark is None
        else {
            "events": fmt_int(data.spark.progress_events),
            "batches": fmt_int(data.spark.batches_with_rows),
            "queries": fmt_int(data.spark.query_ids),
            "rows": fmt_int(data.spark.input_rows),
            "batch_p50": fmt_ms(data.spark.batch_ms_p50),
            "batch_max": fmt_ms(data.spark.batch_ms_max),
            "rps_max": fmt_rate(data.spark.processed_rps_max),
        },
        "validation": None
        if v is None
        else {
            "valid": bool(v.get("valid")),
            "validated_at": v.get("validated_at", NOT_MEASURED),
            "sink_table": v.get("sink_table", data.sink_table),
            "rows": [
                (label, fmt_int(v.get(key)) if isinstance(v.get(key), int) else NOT_MEASURED, rule)
                for label, key, rule in VALIDATION_ROWS
            ],
            "samples": [(k, ", ".join(map(str, ids))) for k, ids in (v.get("samples") or {}).items() if ids],
            "problems": v.get("problems", []),
            "notes": v.get("notes", []),
            "layers": _layers(v.get("layers") or {}),
            "audit": v.get("kafka_audit") or {},
        },
        "plots": plot_files,
        "metrics": None
        if data.metrics is None
        else {
            "signals": fmt_int(len(data.metrics.signals)),
            "dir": METRICS_DIR,
            "pre_s": PRE_S,
            "after_s": AFTER_S,
        },
        "components": sections.components(data, signal_plots or {}),
        "checkpoint": sections.checkpoint(data),
        "idempotent_sink": sections.idempotent_sink(data),
        "findings": findings.report_findings(data),
        "conclusion": _conclusion(data),
        "notes": data.notes,
    }


def _witness(w: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in w.items() if v is not None).replace("|", "\\|")


def _layers(layers: dict[str, Any]) -> dict[str, Any] | None:
    """The per-layer table: every class with its count, verdict, definition and first witnesses."""
    if not layers.get("classes"):
        return None
    rows = []
    for name, c in layers["classes"].items():
        verdict = "information" if c["allowed"] else ("ERROR" if c["count"] else "ok")
        rows.append(
            {
                "layer": c["layer"],
                "name": name,
                "count": fmt_int(c["count"]),
                "verdict": verdict,
                "definition": c["definition"],
                "witnesses": [_witness(w) for w in c["witnesses"]],
            }
        )
    return {
        "audited": layers.get("audited", False),
        "rows": rows,
        "missing": layers.get("missing_by_layer") or {},
        "notes": layers.get("notes", []),
    }


VALIDATION_ROWS = [
    ("attempted ids", "attempted_count", ""),
    ("acknowledged ids", "acked_count", ""),
    ("definitely failed sends", "failed_count", ""),
    ("indeterminate sends", "indeterminate_count", ""),
    ("sink rows", "rows_count", ""),
    ("missing (acked, absent)", "missing_count", "must be 0"),
    ("extra (present, never attempted)", "extra_count", "must be 0"),
    ("duplicate (delivered more than once)", "duplicate_count", "must be 0"),
    ("failed yet present", "failed_present", "must be 0"),
    ("indeterminate, present", "indeterminate_present", "allowed"),
    ("indeterminate, absent", "indeterminate_absent", "allowed"),
    ("offset mismatch (informational)", "offset_mismatch_count", ""),
    ("batch replays absorbed by the sink", "replays_absorbed", ""),
    ("rows absorbed by the upsert (staged - inserted)", "upsert_absorbed_rows", ""),
]


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tools.report", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Markdown, not HTML
    )


def write_report(data: ReportData) -> Path:
    """Write the plots and RESILIENCE_REPORT.md into the run directory; return the report's path."""
    out = data.run_dir
    threshold = data.baseline.threshold_ms if data.baseline else None
    plot_files = {
        "throughput": plots.plot_throughput(
            out, data.series, data.ack_series, data.faults, data.start_ms, data.end_ms
        ),
        "latency": plots.plot_latency(out, data.series, data.faults, data.start_ms, data.end_ms, threshold),
        "recovery": plots.plot_recovery(out, _done(data), data.end_ms),
        "unseen": plots.plot_unseen(
            out, data.series, data.ack_series, data.lag, data.faults, data.start_ms, data.end_ms
        ),
    }
    signal_plots: dict[str, str | None] = {}
    if data.metrics is not None:
        for f in (f for f in data.faults if not f.not_applicable):  # nothing was done: nothing to plot
            end = f.window.end_ms if f.window.end_ms is not None else data.end_ms
            until = fault_horizon(data, f)
            signals = panel_signals(data.metrics, f.window.target, f.window.start_ms, end, until)
            signal_plots[f.window.fault_id] = plots.plot_fault_signals(
                out, f, signals, data.faults, PRE_S, AFTER_S, data.end_ms
            )
    text = environment().get_template(TEMPLATE).render(**build_context(data, plot_files, signal_plots))
    path = out / REPORT_FILE
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
