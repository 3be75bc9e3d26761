"""An experiment whose Prometheus is missing: one warning line, recorded in run.json, nothing saved."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tools.experiment.experiment import ExperimentResult, ExperimentSpec, _save_metrics
from tools.metrics.save import PrometheusUnavailable, save_metrics
from tools.metrics.signals import SIGNALS
from tools.run.layout import METRICS_DIR
from tools.run.meta import create_run, load_run


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


def test_no_prometheus_is_one_warning_and_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "20261204T000000Z-test"
    run_dir.mkdir()
    create_run(run_dir, bootstrap_servers="127.0.0.1:9092", topic="events")
    url = f"http://127.0.0.1:{_closed_port()}"
    spec = ExperimentSpec(scenario="ci", bootstrap_servers="x", postgres_dsn="x", prometheus_url=url)
    result = ExperimentResult(run_dir, 0)
    _save_metrics(spec, run_dir, 1_800_000_000.0, result)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: metrics not saved: Prometheus at ")
    assert load_run(run_dir)["metrics"]["saved"] is False
    assert not (run_dir / METRICS_DIR).exists()
    assert result.exit_code == 0 and result.notes


def test_saving_from_nowhere_raises_before_writing(tmp_path: Path) -> None:
    with pytest.raises(PrometheusUnavailable):
        save_metrics(tmp_path, f"http://127.0.0.1:{_closed_port()}", 0.0, 60.0, signals=SIGNALS)
    assert not (tmp_path / METRICS_DIR).exists()


def test_off_saves_nothing_quietly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "20261204T000000Z-off"
    run_dir.mkdir()
    create_run(run_dir, bootstrap_servers="127.0.0.1:9092", topic="events")
    spec = ExperimentSpec(scenario="ci", bootstrap_servers="x", postgres_dsn="x", prometheus_url="off")
    _save_metrics(spec, run_dir, 0.0, ExperimentResult(run_dir, 0))
    assert capsys.readouterr().err == ""
    assert load_run(run_dir)["metrics"] == {"saved": False, "reason": "not asked for"}
