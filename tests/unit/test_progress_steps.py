"""Progress of long steps away from a terminal: periodic plain lines on stderr, nothing for a short step."""

from __future__ import annotations

import time

import pytest

from tools.progress import Steps


def test_a_long_step_prints_periodic_lines(capsys: pytest.CaptureFixture[str]) -> None:
    seen = ""
    with Steps("demo", interval_s=0.05, tty=False) as steps:
        steps.step("checking 5,000,000 ids", "x")
        deadline = time.monotonic() + 30
        while "demo: checking 5,000,000 ids" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
            seen += capsys.readouterr().err
    assert "demo: checking 5,000,000 ids" in seen and "s (x)" in seen, seen


def test_a_short_step_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with Steps("demo", interval_s=10, tty=False) as steps:
        steps.step("reading the ledger")
    assert capsys.readouterr() == ("", "")
