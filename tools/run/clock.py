"""The one time format of every run file: ISO 8601 UTC with milliseconds, e.g. 2026-11-25T13:00:31.042Z."""

from __future__ import annotations

import time
from datetime import UTC, datetime

RUN_ID_STAMP = "%Y%m%dT%H%M%SZ"


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_from_ms(ms: int) -> str:
    # Integer arithmetic for the milliseconds: a float division could round .123 down to .122.
    seconds, millis = divmod(int(ms), 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def now_iso() -> str:
    return iso_from_ms(now_ms())


def ms_from_iso(value: str) -> int:
    """Epoch ms from an ISO 8601 string; naive values are taken as UTC."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1000)


def stamp(ms: int | None = None) -> str:
    """The UTC time part of a run id, e.g. 20261125T130031Z."""
    moment = datetime.now(UTC) if ms is None else datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime(RUN_ID_STAMP)
