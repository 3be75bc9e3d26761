"""The stress kind, as Pumba's pkg/chaos/stress: stress-ng in the target's cgroup for `duration`.

Pumba takes stress-ng's own arguments as one `stressors` string ("--cpu 4 --timeout 60s", split on
whitespace); so does chaosbed, but it reads the string: an unknown stressor, a worker count below 1 or a
bad size is refused here instead of by stress-ng inside a sidecar once the fault is under way.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tools.chaos.durations import format_duration
from tools.chaos.kinds.base import Kind
from tools.chaos.kinds.params import FaultError, require_duration

DEFAULT_STRESSORS = "--cpu 4 --timeout 60s"  # Pumba's default --stressors
# Stressors: the value is a worker count. stress-ng reads 0 as "one per CPU"; chaosbed asks for the count
# so that a scenario says how hard it stresses whatever host it runs on.
WORKERS = ("--cpu", "--vm", "--io", "--hdd")
MAX_WORKERS = 1024
# Options of one stressor (key) and the stressor they need.
SIZES = {"--vm-bytes": "--vm", "--hdd-bytes": "--hdd"}
PERCENTS = {"--cpu-load": "--cpu"}
FLAGS = {"--vm-keep": "--vm", "--metrics-brief": ""}
TIMEOUT = "--timeout"
_SIZE = re.compile(r"(\d+)([bkmgBKMG]?)")
_SIZE_PERCENT = re.compile(r"(\d+)%")
_TIME = re.compile(r"(\d+)([smhdy]?)")
_TIME_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "y": 31_556_952}
KNOWN = (*WORKERS, *SIZES, *PERCENTS, *FLAGS, TIMEOUT)


def _tokens(text: str) -> list[tuple[str, str | None]]:
    """--opt value / --opt=value pairs (value None for a flag), in order."""
    words, out = text.split(), []
    i = 0
    while i < len(words):
        word = words[i]
        opt, eq, inline = word.partition("=")
        if opt not in KNOWN:
            raise FaultError(
                f"'stressors': unknown stressor or option {word!r} (chaosbed takes {', '.join(KNOWN)})"
            )
        if opt in FLAGS:
            if eq:
                raise FaultError(f"'stressors': {opt} takes no value, got {word!r}")
            out.append((opt, None))
            i += 1
            continue
        if eq:
            value = inline
        elif i + 1 < len(words):
            value = words[i + 1]
            i += 1
        else:
            raise FaultError(f"'stressors': {opt} needs a value")
        out.append((opt, value))
        i += 1
    return out


def _workers(opt: str, value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_WORKERS:
        raise FaultError(
            f"'stressors': {opt} must be a number of workers from 1 to {MAX_WORKERS}, got {value!r}"
        )
    return int(value)


def _size(opt: str, value: str) -> None:
    size, percent = _SIZE.fullmatch(value), _SIZE_PERCENT.fullmatch(value)
    if size and int(size.group(1)) > 0:
        return
    if percent and 1 <= int(percent.group(1)) <= 100:
        return
    raise FaultError(f"'stressors': {opt} must be a size like 256m, 1g or 50%, got {value!r}")


def _timeout_ms(value: str) -> int:
    match = _TIME.fullmatch(value)
    if not match or int(match.group(1)) == 0:
        raise FaultError(f"'stressors': --timeout must be like 60s, 5m or 1h, got {value!r}")
    return int(match.group(1)) * _TIME_S[match.group(2)] * 1000


def parse_stressors(text: str, duration_ms: int) -> list[str]:
    """stress-ng's argv for `text`, checked; a --timeout of the fault's duration is added when absent
    (so a sidecar orphaned by a crash still stops by itself)."""
    pairs = _tokens(text)
    seen: dict[str, str | None] = {}
    for opt, value in pairs:
        if opt in seen:
            raise FaultError(f"'stressors': {opt} is given twice")
        seen[opt] = value
    if not any(opt in WORKERS for opt in seen):
        raise FaultError(f"'stressors' names no stressor (one of {', '.join(WORKERS)}), got {text!r}")
    args: list[str] = []
    for opt, value in pairs:
        needs = {**SIZES, **PERCENTS, **FLAGS}.get(opt, "")
        if needs and needs not in seen:
            raise FaultError(f"'stressors': {opt} applies to {needs} workers, and there are none")
        if opt in WORKERS:
            _workers(opt, str(value))
        elif opt in SIZES:
            _size(opt, str(value))
        elif opt in PERCENTS and (not str(value).isdigit() or not 1 <= int(str(value)) <= 100):
            raise FaultError(f"'stressors': {opt} must be a percentage from 1 to 100, got {value!r}")
        elif opt == TIMEOUT and _timeout_ms(str(value)) < duration_ms:
            # stress-ng would stop before the fault's window ends, and the report would claim a longer stress.
            raise FaultError(f"'stressors': --timeout {value} is shorter than the fault's duration")
        args += [opt] if value is None else [opt, value]
    if TIMEOUT not in seen:
        args += [TIMEOUT, f"{math.ceil(duration_ms / 1000)}s"]
    return args


def _stress(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    duration = require_duration(duration_ms)
    assert duration_ms is not None
    text = raw.get("stressors", DEFAULT_STRESSORS)
    if not isinstance(text, str) or not text.strip():
        raise FaultError(f"'stressors' must be stress-ng arguments like {DEFAULT_STRESSORS!r}, got {text!r}")
    args = parse_stressors(text, duration_ms)
    return {"duration": duration, "stressors": " ".join(args), "args": args}


def _draw(rng: random.Random, target: str, targets: Sequence[str], length_ms: int) -> dict[str, Any]:
    return {"kind": "stress", "target": target, "duration": format_duration(length_ms)} | {
        "stressors": f"--cpu {rng.randint(1, 4)}"
    }


KINDS = (Kind("stress", "stress", ("stressors",), _stress, random_draw=_draw),)
