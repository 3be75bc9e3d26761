"""Append-only JSON-lines files that survive a crash: one write per line, flushed and fsynced."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


class JsonlFile:
    """Thread-safe appender. A line is on disk when append() returns (flush + fsync)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, sort_keys=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if created:
                _fsync_dir(self.path.parent)  # the new file's name must survive a crash too
            try:
                # A crash could have left a torn last line: start ours on a fresh line.
                if os.fstat(fd).st_size and not _ends_with_newline(self.path):
                    data = b"\n" + data
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON object in the file; a line torn by a crash (or any non-JSON line) is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
