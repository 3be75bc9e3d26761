"""The disk kind `disk fill`: a ballast file leaves `free` bytes free on the target's volume for `duration`.

Pumba has no disk fault; Chaos Mesh's IOChaos/`stress --hdd` fill a disk by writing. chaosbed allocates
one ballast file (fallocate: no data written, so filling takes milliseconds, and the undo is one unlink).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tools.chaos.durations import format_duration
from tools.chaos.kinds.base import Kind
from tools.chaos.kinds.params import FaultError, require_duration

CONFLICT = "two disk fills on one volume at once"
_SIZE = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB|TiB|kB|KB|MB|GB|TB|K|M|G|T)?")
_UNIT = {
    **{"": 1, "B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40},
    **{"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40},
    **{"kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12},
}
_PATH = re.compile(r"/[A-Za-z0-9._/@+-]*")
# Services whose volumes the roles cap (a random plan draws a fill only for these).
VOLUME_SERVICES = ("kafka", "postgres", "spark")


def parse_size(key: str, value: Any) -> int:
    """Bytes from 0, 65536, '64MiB', '1G' (binary), '500MB' (decimal); anything else is one error line."""
    text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    match = _SIZE.fullmatch(text)
    if not match:
        raise FaultError(f"'{key}' must be a size like 0, 64MiB or 1GiB (bytes, no sign), got {value!r}")
    return int(match.group(1)) * _UNIT[match.group(2) or ""]


def format_size(size: int) -> str:
    for unit in ("GiB", "MiB", "KiB"):
        if size and size % _UNIT[unit] == 0:
            return f"{size // _UNIT[unit]}{unit}"
    return f"{size}B"


def _fill(raw: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
    duration = require_duration(duration_ms)
    free = parse_size("free", raw.get("free", 0))
    volume = raw.get("volume", "")
    if volume and (not isinstance(volume, str) or not _PATH.fullmatch(volume) or "/../" in f"{volume}/"):
        raise FaultError(f"'volume' must be an absolute path (the volume's mount point), got {volume!r}")
    return {"duration": duration, "free": format_size(free), "free_bytes": free, "volume": volume or ""}


def _draw(rng: random.Random, target: str, targets: Sequence[str], length_ms: int) -> dict[str, Any] | None:
    if not target.startswith(VOLUME_SERVICES):
        return None  # no capped volume to fill (the producer)
    free = rng.choice(("0", "16MiB"))
    return {"kind": "disk fill", "target": target, "duration": format_duration(length_ms), "free": free}


KINDS = (
    # Disruptive: a broker whose only log dir fills up takes it offline and shuts down.
    Kind(
        "disk fill",
        "disk",
        ("free", "volume"),
        _fill,
        disruptive=True,
        conflicts=CONFLICT,
        random_draw=_draw,
    ),
)
