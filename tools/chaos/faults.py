"""The fault model: Pumba's kinds and parameters, validated and normalised before anything is touched."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.chaos.durations import DurationError, format_duration, parse_duration

LIFECYCLE_KINDS = ("kill", "stop", "pause", "restart", "rm")
NETEM_KINDS = ("netem delay", "netem loss", "netem rate", "netem duplicate", "netem corrupt")
NETWORK_KINDS = ("iptables loss", "iptables partition", *NETEM_KINDS)
KINDS = (*LIFECYCLE_KINDS, *NETWORK_KINDS)
# Kinds that take a target out of service; the Kafka quorum rule counts these.
DISRUPTIVE_KINDS = frozenset({"kill", "stop", "pause", "restart", "rm", "iptables partition"})

# Pumba's kill accepts exactly these upper-case names (pkg/chaos/lifecycle/kill.go).
PUMBA_SIGNALS = (
    *("SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGIOT", "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1"),
    *("SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP"),
    *("SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO"),
)
_IFACE = re.compile(r"[a-zA-Z][a-zA-Z0-9.:_-]*")
_RATE = re.compile(r"\d+[gmk]?bit")
_DISTRIBUTIONS = ("", "uniform", "normal", "pareto", "paretonormal")
COMMON_KEYS = frozenset({"kind", "name", "target", "targets", "at", "duration"})


class FaultError(ValueError):
    """One problem with one fault; the scenario loader adds the file and the fault index."""


@dataclass(frozen=True)
class FaultSpec:
    """One validated scenario entry (it may name several targets)."""

    index: int  # 1-based position in the scenario file
    name: str
    kind: str
    targets: tuple[str, ...]
    at_ms: int
    duration_ms: int | None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def window_ms(self) -> int | None:
        """How long the fault disturbs its target; None = until the end of the run (restored then)."""
        return fault_window_ms(self.kind, self.params, self.duration_ms)


def fault_window_ms(kind: str, params: Mapping[str, Any], duration_ms: int | None) -> int | None:
    if kind == "kill":
        restart_after = params.get("restart_after")
        return parse_duration(restart_after) if restart_after else None
    if kind == "stop":
        # Pumba waits up to `time` for the signal, then up to `time` after SIGKILL, then `duration`.
        return 2 * params["time"] * 1000 + (duration_ms or 0) if params["restart"] else None
    if kind == "restart":
        return 2 * params["timeout_s"] * 1000 + 1000
    if kind == "rm":
        return None
    return duration_ms


# --- small typed readers -------------------------------------------------------------------------


def _bool(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise FaultError(f"'{key}' must be true or false, got {value!r}")
    return value


def _int(raw: Mapping[str, Any], key: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultError(f"'{key}' must be an integer, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise FaultError(f"'{key}' must be between {lo} and {hi}, got {value}")
    return value


def _number(raw: Mapping[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(f"'{key}' must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise FaultError(f"'{key}' must be between {lo:g} and {hi:g}, got {value!r}")
    return value


def _two_decimals(key: str, value: float) -> float:
    # tc/Pumba print these with %.2f: refuse values that would be silently rounded.
    if round(value, 2) != value:
        raise FaultError(f"'{key}' allows at most 2 decimals (netem rounds to 0.01), got {value!r}")
    return value


def _choice(raw: Mapping[str, Any], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = raw.get(key, default)
    if value not in choices:
        shown = ", ".join(c or '""' for c in choices)
        raise FaultError(f"'{key}' must be one of {shown}, got {value!r}")
    return value


def _interface(raw: Mapping[str, Any]) -> str:
    value = raw.get("interface", "eth0")
    if not isinstance(value, str) or not _IFACE.fullmatch(value):
        raise FaultError(f"'interface' must match [a-zA-Z][a-zA-Z0-9.:_-]*, got {value!r}")
    return value


def _list(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if isinstance(value, str) and "," in value:
        return [part.strip() for part in value.split(",")]
    return list(value) if isinstance(value, list) else [value]


def _cidrs(raw: Mapping[str, Any], key: str) -> list[str]:
    out = []
    for item in _list(raw, key):
        try:
            # A bare IP becomes /32, as in Pumba.
            out.append(str(ipaddress.IPv4Network(str(item), strict=False)))
        except ValueError:
            raise FaultError(f"'{key}' must be IPv4 addresses or CIDRs, got {item!r}") from None
    return out


def _ports(raw: Mapping[str, Any], key: str) -> list[int]:
    out = []
    for item in _list(raw, key):
        try:
            port = int(str(item), 10)
        except ValueError:
            raise FaultError(f"'{key}' must be ports 0-65535, got {item!r}") from None
        if isinstance(item, bool) or not 0 <= port <= 65535:
            raise FaultError(f"'{key}' must be ports 0-65535, got {item!r}")
        out.append(port)
    return out


def _positive_duration(raw: Mapping[str, Any], key: str, default: str | None = None) -> int | None:
    if key not in raw and default is None:
        return None
    value = raw.get(key, default)
    try:
        ms = parse_duration(value)
    except DurationError as exc:
        raise FaultError(f"'{key}': {exc}") from None
    if ms <= 0:
        raise FaultError(f"'{key}' must be a positive duration, got {value!r}")
    return ms


def _services(raw: Mapping[str, Any], key: str) -> list[str]:
    items = _list(raw, key)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise FaultError(f"'{key}' must be service names, got {item!r}")
    if len(set(items)) != len(items):
        raise FaultError(f"'{key}' names a service twice: {items}")
    return items


# --- per-kind parameter validation -----------------------------------------------------------------
# Each returns the normalised params (JSON-serialisable, defaults filled in). `duration_ms` is the
# validated common `duration`, or None when the fault did not give one.

ParamCheck = Callable[[Mapping[str, Any], "int | None"], dict[str, Any]]


def _require_duration(duration_ms: int | None) -> None:
    if duration_ms is None:
        raise FaultError("'duration' is required for this kind")


def _forbid_duration(duration_ms: int | None, hint: str) -> None:
    if duration_ms is not None:
        raise FaultError(f"'duration' does not apply to this kind ({hint})")


def _kill(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    _forbid_duration(duration_ms, "use restart_after to start it again")
    signal = raw.get("signal", "SIGKILL")
    if signal not in PUMBA_SIGNALS:
        raise FaultError(f"'signal' must be an upper-case Linux signal name like SIGKILL, got {signal!r}")
    params: dict[str, Any] = {"signal": signal}
    restart_after = _positive_duration(raw, "restart_after")
    if restart_after is not None:
        params["restart_after"] = format_duration(restart_after)
    return params


def _stop(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    # Pumba turns time<=0 into 5 silently; we refuse it so the schedule means what it says.
    params: dict[str, Any] = {"time": _int(raw, "time", 5, lo=1), "restart": _bool(raw, "restart", False)}
    if duration_ms is not None and not params["restart"]:
        raise FaultError("'duration' only applies with restart: true")
    if params["restart"]:
        # Pumba's default: start it again 10s after the stop phase.
        params["duration"] = format_duration(duration_ms if duration_ms is not None else 10_000)
    return params


def _pause(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    _require_duration(duration_ms)
    return {"duration": format_duration(duration_ms or 0)}


def _restart(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    _forbid_duration(duration_ms, "use timeout")
    try:
        timeout_ms = parse_duration(raw.get("timeout", "1s"))
    except DurationError as exc:
        raise FaultError(f"'timeout': {exc}") from None
    # The restart API takes whole seconds; Pumba truncates 500ms to 0 silently, we refuse it instead.
    if timeout_ms < 0 or timeout_ms % 1000:
        raise FaultError(f"'timeout' must be a whole number of seconds >= 0, got {raw.get('timeout')!r}")
    return {"timeout": format_duration(timeout_ms), "timeout_s": timeout_ms // 1000}


def _rm(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    _forbid_duration(duration_ms, "rm cannot be undone")
    if raw.get("confirm") is not True:
        raise FaultError("'rm' destroys the container and its state: add 'confirm: true' to the fault")
    return {
        "force": _bool(raw, "force", True),
        "volumes": _bool(raw, "volumes", True),
        "links": _bool(raw, "links", False),
    }


def _iptables_loss(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    _require_duration(duration_ms)
    protocol = _choice(raw, "protocol", "any", ("any", "tcp", "udp", "icmp"))
    params: dict[str, Any] = {
        "duration": format_duration(duration_ms or 0),
        "interface": _interface(raw),
        "protocol": protocol,
        "source": _cidrs(raw, "source"),
        "destination": _cidrs(raw, "destination"),
        "src_port": _ports(raw, "src_port"),
        "dst_port": _ports(raw, "dst_port"),
        "mode": _choice(raw, "mode", "random", ("random", "nth")),
    }
    if (params["src_port"] or params["dst_port"]) and protocol not in ("tcp", "udp"):
        raise FaultError("'src_port'/'dst_port' need protocol tcp or udp (as in Pumba)")
    if params["mode"] == "random":
        if "every" in raw or "packet" in raw:
            raise FaultError("'every'/'packet' only apply to mode nth")
        if "probability" not in raw:
            raise FaultError("'probability' is required for mode random")
        probability = _number(raw, "probability", 0.0, 0.0, 1.0)
        if probability == 0:
            raise FaultError("'probability' must be > 0 (a rule with probability 0 drops nothing)")
        params["probability"] = probability  # kept exact: never rounded (Pumba rounds to 2 decimals)
    else:
        if "probability" in raw:
            raise FaultError("'probability' only applies to mode random")
        if "every" not in raw:
            raise FaultError("'every' is required for mode nth")
        params["every"] = _int(raw, "every", 0, lo=1)
        params["packet"] = _int(raw, "packet", 0, lo=0, hi=params["every"] - 1)
    return params


def _iptables_partition(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    _require_duration(duration_ms)
    peers = _services(raw, "peers")
    if not peers:
        raise FaultError("'peers' must name at least one service to cut the target off from")
    return {"duration": format_duration(duration_ms or 0), "interface": _interface(raw), "peers": peers}


def _netem_common(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    _require_duration(duration_ms)
    return {
        "duration": format_duration(duration_ms or 0),
        "interface": _interface(raw),
        "destination": _cidrs(raw, "destination"),
        "egress_port": _ports(raw, "egress_port"),
        "ingress_port": _ports(raw, "ingress_port"),
    }


def _netem_delay(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    params = _netem_common(raw, duration_ms)
    time_ms = _int(raw, "time", 100, lo=1)
    jitter = _int(raw, "jitter", 10, lo=0)
    if jitter > time_ms:
        raise FaultError(f"'jitter' ({jitter}) must not exceed 'time' ({time_ms}), as in Pumba")
    params.update(
        time=time_ms,
        jitter=jitter,
        correlation=_two_decimals("correlation", _number(raw, "correlation", 20, 0, 100)),
        distribution=_choice(raw, "distribution", "", _DISTRIBUTIONS),
    )
    return params


def _netem_percent(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    params = _netem_common(raw, duration_ms)
    percent = _two_decimals("percent", _number(raw, "percent", 0, 0, 100))
    if percent == 0:
        raise FaultError("'percent' must be > 0 (0 changes nothing)")
    params.update(
        percent=percent, correlation=_two_decimals("correlation", _number(raw, "correlation", 0, 0, 100))
    )
    return params


def _netem_rate(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    params = _netem_common(raw, duration_ms)
    rate = raw.get("rate", "100kbit")
    if not isinstance(rate, str) or not _RATE.fullmatch(rate):
        raise FaultError(f"'rate' must match \\d+[gmk]?bit (e.g. 100kbit), got {rate!r}")
    params.update(
        rate=rate,
        packetoverhead=_int(raw, "packetoverhead", 0),
        cellsize=_int(raw, "cellsize", 0, lo=0),
        celloverhead=_int(raw, "celloverhead", 0),
    )
    return params


_NETEM_PARENT = ("interface", "destination", "egress_port", "ingress_port")
KIND_PARAMS: dict[str, tuple[ParamCheck, tuple[str, ...]]] = {
    "kill": (_kill, ("signal", "restart_after")),
    "stop": (_stop, ("time", "restart")),
    "pause": (_pause, ()),
    "restart": (_restart, ("timeout",)),
    "rm": (_rm, ("force", "volumes", "links", "confirm")),
    "iptables loss": (
        _iptables_loss,
        (
            *("interface", "protocol", "source", "destination", "src_port", "dst_port"),
            *("mode", "probability", "every", "packet"),
        ),
    ),
    "iptables partition": (_iptables_partition, ("interface", "peers")),
    "netem delay": (_netem_delay, (*_NETEM_PARENT, "time", "jitter", "correlation", "distribution")),
    "netem loss": (_netem_percent, (*_NETEM_PARENT, "percent", "correlation")),
    "netem rate": (_netem_rate, (*_NETEM_PARENT, "rate", "packetoverhead", "cellsize", "celloverhead")),
    "netem duplicate": (_netem_percent, (*_NETEM_PARENT, "percent", "correlation")),
    "netem corrupt": (_netem_percent, (*_NETEM_PARENT, "percent", "correlation")),
}


def parse_fault(index: int, raw: object) -> FaultSpec:
    """Validate one scenario entry. Raises FaultError with a message that names the problem."""
    if not isinstance(raw, dict):
        raise FaultError(f"must be a mapping with kind, target and at, got {type(raw).__name__}")
    kind = raw.get("kind")
    if kind is None:
        raise FaultError("missing 'kind'")
    if kind not in KIND_PARAMS:
        raise FaultError(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    check, allowed = KIND_PARAMS[kind]
    unknown = sorted(str(k) for k in raw if k not in COMMON_KEYS and k not in allowed)
    if unknown:
        raise FaultError(
            f"unknown param {unknown[0]!r} for kind {kind!r} (allowed: {', '.join(allowed) or 'none'})"
        )
    if "target" in raw and "targets" in raw:
        raise FaultError("give either 'target' or 'targets', not both")
    targets = _services(raw, "target" if "target" in raw else "targets")
    if not targets:
        raise FaultError("missing target: name the service(s) explicitly with 'target' or 'targets'")
    if "at" not in raw:
        raise FaultError("missing 'at' (start offset from the chaos phase start, e.g. 30s)")
    try:
        at_ms = parse_duration(raw["at"])
    except DurationError as exc:
        raise FaultError(f"'at': {exc}") from None
    if at_ms < 0:
        raise FaultError(f"'at' must not be negative, got {raw['at']!r}")
    duration_ms = _positive_duration(raw, "duration")
    params = check(raw, duration_ms)
    if kind == "stop":
        duration_ms = parse_duration(params["duration"]) if params["restart"] else None
    if kind == "iptables partition":
        overlap = sorted(set(targets) & set(params["peers"]))
        if overlap:
            raise FaultError(f"a target cannot be its own peer: {overlap[0]!r}")
    name = raw.get("name", f"{kind} {','.join(targets)}")
    if not isinstance(name, str):
        raise FaultError(f"'name' must be a string, got {name!r}")
    return FaultSpec(index, name, kind, tuple(targets), at_ms, duration_ms, params)
