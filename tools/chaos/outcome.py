"""How a fault ended, as exceptions the executors raise and the runner turns into timeline outcomes."""

from __future__ import annotations

OK = "ok"
TARGET_VANISHED = "target-vanished"
UNSUPPORTED = "unsupported"
INTERRUPTED = "interrupted"
RESTORED_AFTER_CRASH = "restored-after-crash"


class FaultOutcome(Exception):
    outcome = "failed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class TargetVanished(FaultOutcome):
    outcome = TARGET_VANISHED


class Unsupported(FaultOutcome):
    outcome = UNSUPPORTED


class FaultFailed(FaultOutcome):
    @property  # type: ignore[override]
    def outcome(self) -> str:
        return f"failed: {self.detail}"


def is_failure(outcome: str) -> bool:
    return outcome.startswith("failed")
