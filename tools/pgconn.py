"""PostgreSQL connections for the tools: bounded connect, one-line errors, DSNs shown without secrets."""

from __future__ import annotations

import re

import psycopg2
import psycopg2.extensions

from tools.errors import ToolError

CONNECT_TIMEOUT_S = 5


def redact_dsn(dsn: str | None) -> str:
    """The DSN without its password, for messages and reports (passfile paths are kept)."""
    if not dsn:
        return "(none)"
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        return "(unparseable DSN)"
    params.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in params.items())


def _one_line(exc: Exception, dsn: str) -> str:
    text = " ".join(str(exc).split())
    params = psycopg2.extensions.parse_dsn(dsn) if dsn else {}
    password = params.get("password")
    if password:
        text = text.replace(password, "***")
    return re.sub(r"(password=)\S+", r"\1***", text)


def connect(dsn: str | None, *, what: str = "database") -> psycopg2.extensions.connection:
    """Connect with a bounded timeout; any failure becomes a one-line ToolError (exit 2)."""
    if not dsn:
        raise ToolError(f"no PostgreSQL DSN for the {what}: pass --postgres-dsn or record it in run.json")
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        raise ToolError("invalid PostgreSQL DSN (could not parse it)") from None
    kwargs: dict[str, object] = {"application_name": "chaosbed-tools"}
    if "connect_timeout" not in params:
        kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        return psycopg2.connect(dsn, **kwargs)
    except psycopg2.Error as exc:
        raise ToolError(f"cannot connect to PostgreSQL ({redact_dsn(dsn)}): {_one_line(exc, dsn)}") from None
