"""run.json: everything later commands need (DSN, brokers, topic, sink table, profile, settings).

`tools validate <run>` and `tools report <run>` read it, so they work without flags.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tools.errors import ToolError
from tools.run.clock import now_iso
from tools.run.layout import RUN_JSON, run_id_of

SINK_TABLES = ("events", "events_append")
DEFAULT_TOPIC = "events"
DEFAULT_PROFILE = "safe"


def check_sink_table(table: str) -> str:
    if table not in SINK_TABLES:
        raise ToolError(f"invalid sink table {table!r}: expected one of {', '.join(SINK_TABLES)}")
    return table


def load_run(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_JSON
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ToolError(f"no run at {run_dir}: {path} not found") from None
    except (OSError, ValueError) as exc:
        raise ToolError(f"unreadable {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("run_id"), str):
        raise ToolError(f"corrupt {path}: expected a JSON object with a run_id")
    data.setdefault("sink_table", "events")
    data.setdefault("profile", DEFAULT_PROFILE)
    data.setdefault("topic", DEFAULT_TOPIC)
    for key in ("versions", "topology", "settings"):
        if not isinstance(data.get(key), dict):
            data[key] = {}
    return data


def _has_password(data: Any) -> bool:
    dsn = data.get("postgres_dsn") if isinstance(data, dict) else None
    return bool(dsn) and "password" in str(dsn)


def write_json_atomic(path: Path, data: Any, indent: int | None = 2) -> None:
    """Write via a temp file + rename, so a reader never sees half a file (indent None: one line)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        # Readable by the other tools' users, unless someone put a password inline in the DSN.
        os.fchmod(fd, 0o600 if _has_password(data) else 0o644)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=indent, sort_keys=False, separators=None if indent else (",", ":"))
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge dicts; values of `extra` win."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def create_run(
    run_dir: Path,
    *,
    bootstrap_servers: str | None = None,
    topic: str | None = None,
    postgres_dsn: str | None = None,
    profile: str | None = None,
    sink_table: str | None = None,
    versions: dict[str, Any] | None = None,
    topology: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Create `run_dir/run.json` (the run id is the directory's name), or merge fields into an existing one.

    Fields left as None keep their stored value (or the default for a new run); dicts are merged.
    Used by `tools produce` and `tools experiment run`.
    """
    run_id = run_id_of(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ToolError(f"cannot create run directory {run_dir}: {exc.strerror}") from None
    if (run_dir / RUN_JSON).exists():
        data = load_run(run_dir)
        if data["run_id"] != run_id:
            raise ToolError(f"{run_dir / RUN_JSON} belongs to run {data['run_id']!r}, not {run_id!r}")
    else:
        data = {
            "run_id": run_id,
            "started_at": now_iso(),
            "ended_at": None,
            "versions": {},
            "topology": {},
            "settings": {},
            "profile": DEFAULT_PROFILE,
            "postgres_dsn": None,
            "bootstrap_servers": None,
            "topic": DEFAULT_TOPIC,
            "sink_table": "events",
        }
    scalars = {
        "bootstrap_servers": bootstrap_servers,
        "topic": topic,
        "postgres_dsn": postgres_dsn,
        "profile": profile,
        "sink_table": check_sink_table(sink_table) if sink_table else None,
    }
    data.update({k: v for k, v in scalars.items() if v is not None})
    updates: dict[str, Any] = {"versions": versions, "topology": topology, "settings": settings}
    data = _merge(data, {k: v for k, v in updates.items() if v})
    if extra:
        data = _merge(data, extra)
    write_json_atomic(run_dir / RUN_JSON, data)
    return run_dir


def update_run(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge fields into run.json (dicts deep-merged) and return the new content."""
    data = _merge(load_run(run_dir), fields)
    write_json_atomic(run_dir / RUN_JSON, data)
    return data
