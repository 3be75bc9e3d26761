"""DSNs are shown without passwords; connection failures are one line."""

from __future__ import annotations

import pytest
from fixtures.ports import free_port

from tools.errors import ToolError
from tools.pgconn import connect, redact_dsn


def test_redact_dsn_drops_only_the_password() -> None:
    shown = redact_dsn("host=db port=5432 user=u password=hunter2 dbname=chaos passfile=/p")
    assert "hunter2" not in shown
    assert "host=db" in shown and "passfile=/p" in shown and "dbname=chaos" in shown
    assert "s3cret" not in redact_dsn("postgresql://u:s3cret@db:5432/chaos")
    assert redact_dsn(None) == "(none)"
    assert redact_dsn("host='unterminated") == "(unparseable DSN)"


def test_unreachable_database_is_a_one_line_error_without_password() -> None:
    port = free_port()  # nothing listens here
    with pytest.raises(ToolError) as exc:
        connect(f"host=127.0.0.1 port={port} user=u password=hunter2 dbname=x")
    message = str(exc.value)
    assert exc.value.exit_code == 2
    assert "\n" not in message and "hunter2" not in message
    assert "cannot connect to PostgreSQL" in message and str(port) in message


def test_wrong_password_is_reported_without_echoing_it(pg_server) -> None:  # type: ignore[no-untyped-def]
    dsn = f"host=127.0.0.1 port={pg_server.port} user=postgres password=wrong-pw-123 dbname=postgres"
    with pytest.raises(ToolError) as exc:
        connect(dsn)
    assert "password authentication failed" in str(exc.value)
    assert "wrong-pw-123" not in str(exc.value)


def test_missing_dsn() -> None:
    with pytest.raises(ToolError, match="no PostgreSQL DSN"):
        connect(None)
