"""How a fault ended, as exceptions the executors raise and the runner turns into timeline outcomes."""

from __future__ import annotations

from tools.run.timeline import (  # the vocabulary lives with the timeline; re-exported for the executors
    FAILED,
    INTERRUPTED,
    NOT_APPLICABLE,
    OK,
    RESTORED_AFTER_CRASH,
    TARGET_VANISHED,
    UNSUPPORTED,
    failed,
    is_failure,
)

__all__ = [
    "INTERRUPTED",
    "NOT_APPLICABLE",
    "OK",
    "RESTORED_AFTER_CRASH",
    "TARGET_VANISHED",
    "UNSUPPORTED",
    "FaultFailed",
    "FaultOutcome",
    "NotApplicable",
    "TargetVanished",
    "Unsupported",
    "is_failure",
]


class FaultOutcome(Exception):
    outcome = FAILED

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class TargetVanished(FaultOutcome):
    outcome = TARGET_VANISHED


class Unsupported(FaultOutcome):
    outcome = UNSUPPORTED


class NotApplicable(FaultOutcome):
    outcome = NOT_APPLICABLE


class FaultFailed(FaultOutcome):
    @property  # type: ignore[override]
    def outcome(self) -> str:
        return failed(self.detail)
