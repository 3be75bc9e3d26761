"""Lifecycle kinds, as Pumba's pkg/chaos/lifecycle: kill, stop, pause, restart, rm."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from tools.chaos.durations import DurationError, format_duration, parse_duration
from tools.chaos.kinds.base import Kind
from tools.chaos.kinds.params import (
    FaultError,
    forbid_duration,
    read_bool,
    read_int,
    read_positive_duration,
    require_duration,
)

CONFLICT = "two lifecycle faults on one container at once"
# Pumba's kill accepts exactly these upper-case names (pkg/chaos/lifecycle/kill.go).
PUMBA_SIGNALS = (
    *("SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGIOT", "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1"),
    *("SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP"),
    *("SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO"),
)


# --- kill ------------------------------------------------------------------------------------------


def _kill(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    forbid_duration(duration_ms, "use restart_after to start it again")
    signal = raw.get("signal", "SIGKILL")
    if signal not in PUMBA_SIGNALS:
        raise FaultError(f"'signal' must be an upper-case Linux signal name like SIGKILL, got {signal!r}")
    params: dict[str, Any] = {"signal": signal}
    restart_after = read_positive_duration(raw, "restart_after")
    if restart_after is not None:
        params["restart_after"] = format_duration(restart_after)
    return params


def _kill_span(params: Mapping[str, Any], duration_ms: int | None) -> int | None:
    restart_after = params.get("restart_after")
    return parse_duration(restart_after) if restart_after else None


def _kill_draw(rng: random.Random, target: str, targets: Sequence[str], length_ms: int) -> dict[str, Any]:
    return {"kind": "kill", "target": target, "restart_after": format_duration(length_ms)}


# --- stop ------------------------------------------------------------------------------------------


def _stop(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    # Pumba turns time<=0 into 5 silently; we refuse it so the schedule means what it says.
    params: dict[str, Any] = {
        "time": read_int(raw, "time", 5, lo=1),
        "restart": read_bool(raw, "restart", False),
    }
    if duration_ms is not None and not params["restart"]:
        raise FaultError("'duration' only applies with restart: true")
    if params["restart"]:
        # Pumba's default: start it again 10s after the stop phase.
        params["duration"] = format_duration(duration_ms if duration_ms is not None else 10_000)
    return params


def _stop_window(params: Mapping[str, Any], duration_ms: int | None) -> int | None:
    # Pumba waits up to `time` for the signal, then up to `time` after SIGKILL, then `duration`.
    return 2 * params["time"] * 1000 + (duration_ms or 0) if params["restart"] else None


def _stop_duration(params: Mapping[str, Any], duration_ms: int | None) -> int | None:
    return parse_duration(params["duration"]) if params["restart"] else None


def _stop_draw(rng: random.Random, target: str, targets: Sequence[str], length_ms: int) -> dict[str, Any]:
    return {"kind": "stop", "target": target, "restart": True, "duration": format_duration(length_ms)}


# --- pause -----------------------------------------------------------------------------------------


def _pause(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    return {"duration": require_duration(duration_ms)}


def _pause_draw(rng: random.Random, target: str, targets: Sequence[str], length_ms: int) -> dict[str, Any]:
    return {"kind": "pause", "target": target, "duration": format_duration(length_ms)}


# --- restart ---------------------------------------------------------------------------------------


def _restart(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    forbid_duration(duration_ms, "use timeout")
    try:
        timeout_ms = parse_duration(raw.get("timeout", "1s"))
    except DurationError as exc:
        raise FaultError(f"'timeout': {exc}") from None
    # The restart API takes whole seconds; Pumba truncates 500ms to 0 silently, we refuse it instead.
    if timeout_ms < 0 or timeout_ms % 1000:
        raise FaultError(f"'timeout' must be a whole number of seconds >= 0, got {raw.get('timeout')!r}")
    return {"timeout": format_duration(timeout_ms), "timeout_s": timeout_ms // 1000}


def _restart_window(params: Mapping[str, Any], duration_ms: int | None) -> int | None:
    return 2 * params["timeout_s"] * 1000 + 1000


def _restart_draw(rng: random.Random, target: str, targets: Sequence[str], length_ms: int) -> dict[str, Any]:
    return {"kind": "restart", "target": target, "timeout": "1s"}


# --- rm --------------------------------------------------------------------------------------------


def _rm(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    forbid_duration(duration_ms, "rm cannot be undone")
    if raw.get("confirm") is not True:
        raise FaultError("'rm' destroys the container and its state: add 'confirm: true' to the fault")
    return {
        "force": read_bool(raw, "force", True),
        "volumes": read_bool(raw, "volumes", True),
        "links": read_bool(raw, "links", False),
    }


def _never(params: Mapping[str, Any], duration_ms: int | None) -> int | None:
    return None


def _at_once(params: Mapping[str, Any], duration_ms: int | None) -> int | None:
    return 0


KINDS = (
    Kind(
        "kill",
        "lifecycle",
        ("signal", "restart_after"),
        _kill,
        window_ms=_kill_span,
        hold_ms=_kill_span,
        disruptive=True,
        conflicts=CONFLICT,
        random_draw=_kill_draw,
    ),
    Kind(
        "stop",
        "lifecycle",
        ("time", "restart"),
        _stop,
        window_ms=_stop_window,
        hold_ms=_stop_duration,
        duration_ms=_stop_duration,
        disruptive=True,
        conflicts=CONFLICT,
        random_draw=_stop_draw,
    ),
    Kind("pause", "lifecycle", (), _pause, disruptive=True, conflicts=CONFLICT, random_draw=_pause_draw),
    Kind(
        "restart",
        "lifecycle",
        ("timeout",),
        _restart,
        window_ms=_restart_window,
        hold_ms=_at_once,
        disruptive=True,
        conflicts=CONFLICT,
        random_draw=_restart_draw,
    ),
    Kind(
        "rm",
        "lifecycle",
        ("force", "volumes", "links", "confirm"),
        _rm,
        window_ms=_never,
        hold_ms=_at_once,
        disruptive=True,
        conflicts=CONFLICT,
        never_random="rm destroys state and is never random",
    ),
)
