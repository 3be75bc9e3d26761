"""spark kinds: faults inside a Spark standalone worker (spark_deploy: standalone).

`kill-executor` signals only the executor JVM(s) a worker runs (`CoarseGrainedExecutorBackend`), not the
worker: the worker reports the executor lost and launches a new one, the driver runs the lost tasks again.
Pumba has no counterpart (it acts on whole containers).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from tools.chaos.kinds.base import Kind
from tools.chaos.kinds.lifecycle import PUMBA_SIGNALS
from tools.chaos.kinds.params import FaultError, forbid_duration

# The executor's main class, as a regex that does not match the command line that searches for it.
EXECUTOR_PATTERN = "[o]rg.apache.spark.executor.CoarseGrainedExecutorBackend"


def _kill_executor(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    forbid_duration(duration_ms, "the worker launches a new executor itself")
    signal = raw.get("signal", "SIGKILL")
    if signal not in PUMBA_SIGNALS:
        raise FaultError(f"'signal' must be an upper-case Linux signal name like SIGKILL, got {signal!r}")
    return {"signal": signal}


def _at_once(params: Mapping[str, Any], duration_ms: int | None) -> int | None:
    return 0


def _draw(rng: random.Random, target: str, targets: Sequence[str], length_ms: int) -> dict[str, Any] | None:
    # Only workers run executors.
    return {"kind": "kill-executor", "target": target} if "worker" in target else None


KINDS = (
    Kind(
        "kill-executor",
        "spark",
        ("signal",),
        _kill_executor,
        window_ms=_at_once,
        hold_ms=_at_once,
        disruptive=False,
        conflicts="two lifecycle faults on one container at once",
        random_draw=_draw,
    ),
)
