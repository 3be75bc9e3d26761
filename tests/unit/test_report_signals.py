"""The report's reading of saved metrics: a signal's reaction to a fault, in words, from its own points."""

from __future__ import annotations

from pathlib import Path

from fixtures.metrics import write_signal

from tools.report.findings import component_of, own_ack_stall_s, panel_signals, react, what_components_did
from tools.report.signals import load_metrics, short_label

T0 = 1_800_000_000.0  # the fault starts here (epoch s) and lasts 10 s


def ms(s: float) -> int:
    return int((T0 + s) * 1000)


def urp(run_dir: Path) -> None:
    """Under-replicated partitions of two brokers: 0, then 2 on kafka-1 from +2 s, back to 0 at +20 s."""
    one = [(T0 + s, 2 if 2 <= s < 20 else 0) for s in range(-30, 80, 2)]
    two = [(T0 + s, 0) for s in range(-30, 80, 2)]
    write_signal(run_dir, "kafka_under_replicated_partitions", "kafka", "count",
                 [({"service": "kafka-1"}, one), ({"service": "kafka-2"}, two)],
                 "under-replicated partitions")  # fmt: skip


def test_no_metrics_dir_is_none(tmp_path: Path) -> None:
    assert load_metrics(tmp_path) is None


def test_reads_series_drops_nan_and_notes_unreadable_files(tmp_path: Path) -> None:
    urp(tmp_path)
    write_signal(tmp_path, "pg_connections", "postgres", "count", [({}, [(T0, "NaN"), (T0 + 2, "7")])])
    (tmp_path / "metrics" / "broken.json").write_text("{")
    m = load_metrics(tmp_path)
    assert m is not None
    assert set(m.signals) == {"kafka_under_replicated_partitions", "pg_connections"}
    assert m.signals["pg_connections"].series[0].points == [(ms(2), 7.0)]
    assert len(m.notes) == 1 and "broken.json" in m.notes[0]
    sig = m.signals["kafka_under_replicated_partitions"]
    assert [sig.series_name(s) for s in sig.series] == ["service kafka-1", "service kafka-2"]
    assert dict(sig.total())[ms(4)] == 2.0


def test_reaction_rises_and_returns(tmp_path: Path) -> None:
    urp(tmp_path)
    m = load_metrics(tmp_path)
    assert m is not None
    r = react(m.signals["kafka_under_replicated_partitions"], ms(0), ms(10))
    assert r is not None
    assert (r.level, r.extreme, r.departed_ms, r.back_ms) == (0.0, 2.0, ms(2), ms(20))
    text = r.describe(ms(0), ms(10))
    assert text == (
        "under-replicated partitions 0 → 2 from +2.0 s, back at +20.0 s (10.0 s after the fault ended)"
    )


def test_noise_is_not_a_reaction_but_a_stall_is(tmp_path: Path) -> None:
    noisy = [(T0 + s, 1000 + (37 if s % 4 else -41)) for s in range(-30, 80, 2)]
    stalled = [(T0 + s, 0 if 0 <= s < 12 else 1000 + (37 if s % 4 else -41)) for s in range(-30, 80, 2)]
    write_signal(tmp_path, "pg_commits_per_second", "postgres", "per_second", [({}, noisy)], "commits")
    write_signal(tmp_path, "spark_processed_rows_per_second", "spark", "per_second", [({}, stalled)], "rows")
    m = load_metrics(tmp_path)
    assert m is not None
    assert react(m.signals["pg_commits_per_second"], ms(0), ms(10)) is None
    r = react(m.signals["spark_processed_rows_per_second"], ms(0), ms(10))
    assert r is not None and r.extreme == 0 and r.departed_ms == ms(2) and r.back_ms == ms(12)
    assert "Spark processed rate 998/s → 0/s from +2.0 s, back at +12.0 s" in r.describe(ms(0), ms(10))


def test_no_reaction_without_data_before_the_fault(tmp_path: Path) -> None:
    write_signal(
        tmp_path, "consumer_lag", "spark", "count", [({"partition": "0"}, [(T0 + 2, 5), (T0 + 4, 900)])]
    )
    m = load_metrics(tmp_path)
    assert m is not None and react(m.signals["consumer_lag"], ms(0), ms(10)) is None


def test_what_each_component_did(tmp_path: Path) -> None:
    urp(tmp_path)
    flat = [(T0 + s, 3) for s in range(-30, 80, 2)]
    write_signal(tmp_path, "pg_connections", "postgres", "count", [({}, flat)], "connections")
    write_signal(tmp_path, "chaosbed_fault_active", "chaos", "count", [({}, flat)])
    m = load_metrics(tmp_path)
    assert m is not None
    lines = {c.component: c.text for c in what_components_did(m, ms(0), ms(10))}
    assert set(lines) == {"kafka", "postgres"}  # no signal of spark or the producer; chaos is not a component
    assert lines["kafka"].startswith("under-replicated partitions 0 → 2 from +2.0 s")
    assert lines["postgres"] == "no signal left its level (unchanged: connections)."


def test_component_of_targets() -> None:
    targets = ("kafka-2", "kafka-controller-1", "spark", "postgres", "producer", "x")
    assert [component_of(t) for t in targets] == ["kafka", "kafka", "spark", "postgres", "producer", "other"]


def test_short_labels() -> None:
    assert short_label("kafka_leader_elections_per_second") == "leadership changes"
    assert short_label("kafka_request_queue_seconds") == "request queue"  # not in LABELS: from the name


def test_panels_key_signals_then_the_targets_reacting_ones(tmp_path: Path) -> None:
    urp(tmp_path)
    flat = [(T0 + s, 1) for s in range(-30, 80, 2)]
    write_signal(tmp_path, "kafka_active_controllers", "kafka", "count", [({}, flat)])  # unchanged: left out
    write_signal(tmp_path, "pg_connections", "postgres", "count", [({}, flat)])  # a key signal: always in
    fenced = [(T0 + s, 1 if 0 <= s < 6 else 0) for s in range(-30, 80, 2)]
    write_signal(tmp_path, "kafka_fenced_brokers", "kafka", "count", [({}, fenced)])
    m = load_metrics(tmp_path)
    assert m is not None
    names = [s.name for s in panel_signals(m, "kafka-1", ms(0), ms(10))]
    assert names == ["kafka_under_replicated_partitions", "pg_connections", "kafka_fenced_brokers"]
    assert [s.name for s in panel_signals(m, "spark", ms(0), ms(10))] == names[:2]


def test_event_rates_are_counted(tmp_path: Path) -> None:
    """Leadership changes as a rate over 10 s windows, sampled every 2 s: 2 moves read as 0.2/s in the five
    samples whose window holds them; integrated, 2 partitions moved."""
    rate = [(T0 + s, 0.2 if 2 <= s <= 10 else 0) for s in range(-30, 80, 2)]
    write_signal(tmp_path, "kafka_leader_elections_per_second", "kafka", "per_second", [({}, rate)])
    m = load_metrics(tmp_path)
    assert m is not None
    r = react(m.signals["kafka_leader_elections_per_second"], ms(0), ms(10))
    assert r is not None and r.events is not None and round(r.events, 6) == 2.0
    assert r.describe(ms(0), ms(10)) == (
        "2 partition leaderships moved from +2.0 s, back at +12.0 s (2.0 s after the fault ended)"
    )


def test_signals_without_data_are_not_called_unchanged(tmp_path: Path) -> None:
    urp(tmp_path)
    write_signal(
        tmp_path, "kafka_fenced_brokers", "kafka", "count", []
    )  # saved, but Prometheus had no series
    write_signal(tmp_path, "producer_in_flight", "producer", "count", [({}, [(T0 + 5, 10)])])  # none before
    m = load_metrics(tmp_path)
    assert m is not None
    lines = {c.component: c.text for c in what_components_did(m, ms(0), ms(10))}
    assert lines["kafka"].endswith("(no data: fenced brokers).") and "unchanged" not in lines["kafka"]
    assert lines["producer"] == "no data around this fault (sends in flight)."


def test_own_ack_stall_begins_during_the_fault() -> None:
    acks = [0, 100, 200, 1000, 9000, 9100, 20000, 20100]
    assert own_ack_stall_s(acks, 150, 1500) == 8.0  # from the ack at 1000 to the first after the end, 9000
    assert own_ack_stall_s(acks, 9050, 9500) == 10.9  # the stall began during it (at 9100)
    assert own_ack_stall_s(acks, 9200, 9300) == 10.8  # from its start: no ack inside
    assert own_ack_stall_s(acks, 20200, 20300) is None  # no ack after it: not judged
    assert own_ack_stall_s([], 0, 10) is None
